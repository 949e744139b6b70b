// Same options, same bytes; a worker's share of the fleet sends what the whole plant would.

import { encodeSenmlJson, type PlantModel, type SenmlRecord } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { type FaultOptions, type OutgoingMessage, PlantSimulation, partitionFleet } from '../../../src/model/index.ts'
import { generatePlant } from '../../../src/plant-generator.ts'
import { collect, utc } from './published.ts'

const START = utc(2025, 3, 4, 5, 30) // Tuesday 13:30 in Yibin
const ALL_FAULTS: FaultOptions = {
  psm: { share: 0.3, batchIntervalS: 60 },
  latency: { meanMs: 500, jitterMs: 400 },
  loss: { probability: 0.05, retransmitAfterS: 8 },
  reorder: { probability: 0.05 },
  clockDriftPpm: 50,
  counterResets: { perDevicePerDay: 50 },
}

const view = (messages: OutgoingMessage[]) =>
  messages.map((m) => `${m.sendAtS} ${m.deviceId} ${m.kind} ${m.site} ${m.payload.toString('latin1')}`)

function run(plant: PlantModel, emitDevices?: ReadonlySet<string>, minutes = 20) {
  const sim = new PlantSimulation({ plant, seed: 42, startS: START, faults: ALL_FAULTS, emitDevices })
  const messages = collect(sim, START, START + minutes * 60, 7.3)
  return { sim, messages }
}

describe('determinism', () => {
  const plant = generatePlant({ devices: 80, seed: 9 })

  it('gives byte-identical messages and truth for the same options', () => {
    const a = run(plant)
    const b = run(plant)
    expect(a.messages.length).toBeGreaterThan(80 * 60 * 10)
    expect(view(a.messages)).toEqual(view(b.messages))
    expect(JSON.stringify(a.sim.truth)).toBe(JSON.stringify(b.sim.truth))
    // A different seed is a different plant history.
    const c = new PlantSimulation({ plant, seed: 43, startS: START, faults: ALL_FAULTS })
    expect(view(collect(c, START, START + 60))).not.toEqual(view(a.messages.filter((m) => m.sendAtS <= START + 60)))
  })

  it('orders messages by send time, then device id', () => {
    const { messages } = run(plant, undefined, 5)
    for (let i = 1; i < messages.length; i++) {
      const a = messages[i - 1]!
      const b = messages[i]!
      expect(a.sendAtS < b.sendAtS || (a.sendAtS === b.sendAtS && a.deviceId <= b.deviceId)).toBe(true)
    }
  })

  it('returns the same messages however time is advanced', () => {
    const sim = new PlantSimulation({ plant, seed: 42, startS: START, faults: ALL_FAULTS })
    const fine = collect(sim, START, START + 300, 0.137)
    const coarse = run(plant, undefined, 5).messages
    expect(view(fine)).toEqual(view(coarse))
  })

  it('gives, for a subset of devices, the bytes the whole plant gives them (emitDevices)', () => {
    const full = run(plant)
    const eqs = plant.sites[0]!.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment))
    const oven = eqs.find((eq) => eq.id === 'coater-1-oven')!
    const winders = eqs.filter((eq) => eq.type === 'winder').slice(0, 2)
    // Only the oven's sensor (not its power meter), two winders, and the PV meter.
    const subset = new Set([oven.devices[1]!, ...winders.flatMap((eq) => eq.devices), plant.sites[0]!.meters!.pv![0]!])
    const part = run(plant, subset)
    expect(part.messages.length).toBeGreaterThan(0)
    expect(view(part.messages)).toEqual(view(full.messages.filter((m) => subset.has(m.deviceId))))
    for (const scope of part.sim.truth.equipmentScopes()) {
      expect(part.sim.truth.energyByMinute(scope)).toEqual(full.sim.truth.energyByMinute(scope))
    }
    expect(part.sim.truth.equipmentScopes().length).toBe(3)
    const pv = plant.sites[0]!.meters!.pv![0]!
    expect(part.sim.truth.meterEnergyByMinute(pv)).toEqual(full.sim.truth.meterEnergyByMinute(pv))
  })

  it('gives the grid meter the same bytes when its worker simulates the site for it', () => {
    const full = run(plant, undefined, 5)
    const grid = plant.sites[0]!.meters!.grid![0]!
    const part = run(plant, new Set([grid]), 5)
    expect(view(part.messages)).toEqual(view(full.messages.filter((m) => m.deviceId === grid)))
  })

  it('partitions the fleet by whole lines, and the parts together send what the whole plant sends', () => {
    const parts = partitionFleet(plant, 3)
    const all = parts.flatMap((p) => [...p])
    expect(new Set(all).size).toBe(all.length)
    expect(all.length).toBe(80)
    const merged = parts.flatMap((p) => run(plant, p, 3).messages)
    const full = run(plant, undefined, 3).messages
    expect(view(merged).sort()).toEqual(view(full).sort())
  })

  it('writes SenML JSON exactly as encodeSenmlJson does, at most 4 records per sample', () => {
    const { messages } = run(plant, undefined, 3)
    for (const m of messages) {
      if (m.kind !== 'up') continue
      const records = JSON.parse(m.payload.toString('utf8')) as SenmlRecord[]
      expect(encodeSenmlJson(records).equals(m.payload)).toBe(true)
      expect(records[0]!.bn).toBe(`urn:dev:imei:${m.deviceId}:`)
      let perSample = 0
      for (const record of records) {
        if (record.bt !== undefined) perSample = 0
        perSample++
        expect(perSample).toBeLessThanOrEqual(4)
      }
    }
  })
})
