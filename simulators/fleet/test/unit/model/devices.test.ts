// NB-IoT behaviour: commands and acks, power-saving mode, duplicates and reordering only when
// switched on, clock drift bounded.

import { parseSetpointAck, type SetpointCommand } from '@plantwatt/contract'
import { describe, expect, it } from 'vitest'
import { type FaultOptions, type OutgoingMessage, PlantSimulation } from '../../../src/model/index.ts'
import { deviceRolesOf, generatePlant } from '../../../src/plant-generator.ts'
import { collect, decodeAll, utc } from './published.ts'

const START = utc(2025, 3, 4, 1, 0) // Tuesday 09:00 in Yibin: coating lines running
const plant = generatePlant({ devices: 40, seed: 5 })
const eqs = plant.sites[0]!.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment))
const oven = eqs.find((eq) => eq.id === 'coater-1-oven')!
const sensor = deviceRolesOf(oven).process!.device

const command = (id: string, value: number): SetpointCommand => ({
  type: 'setpoint',
  id,
  name: 'fan_hz',
  value,
  issuedAt: START,
})

function fanReadings(messages: OutgoingMessage[]): { t: number; v: number }[] {
  const series = decodeAll(messages).get(sensor)!.get('fan_hz')!
  return series.t.map((t, i) => ({ t, v: series.v[i]! }))
}

describe('setpoint commands', () => {
  it('are applied at the next sample and acked; out-of-range values are rejected with a reason', () => {
    const sim = new PlantSimulation({ plant, seed: 1, startS: START })
    const before = collect(sim, START, START + 100)
    expect(fanReadings(before).every((r) => r.v === 50)).toBe(true)
    sim.receiveCommand(sensor, command('c1', 42), START + 100)
    sim.receiveCommand(sensor, command('c2', 75), START + 100)
    const after = collect(sim, START + 100, START + 200)
    const acks = after.filter((m) => m.kind === 'ack')
    // CONTRACT.md §3 v1.1: each ack carries the device's time of applying or rejecting (epoch s).
    expect(acks.map((m) => parseSetpointAck(m.payload))).toEqual([
      { id: 'c1', status: 'applied', t: acks[0]!.sendAtS },
      {
        id: 'c2',
        status: 'rejected',
        reason: expect.stringContaining('outside the range 30–50 Hz'),
        t: acks[0]!.sendAtS,
      },
    ])
    expect(acks[0]!.sendAtS).toBeGreaterThanOrEqual(START + 100)
    expect(acks[0]!.sendAtS).toBeLessThan(START + 101)
    const fan = fanReadings(after)
    // The sample the command arrived at still shows the old value; every later one the new.
    expect(fan.filter((r) => r.t > acks[0]!.sendAtS).every((r) => r.v === 42)).toBe(true)
    expect(fan.at(-1)!.v).toBe(42)
    // A device without that setpoint refuses it.
    sim.receiveCommand(oven.devices[0]!, command('c3', 40), START + 200)
    const refused = collect(sim, START + 200, START + 202).filter((m) => m.kind === 'ack')
    expect(parseSetpointAck(refused[0]!.payload)).toMatchObject({ id: 'c3', status: 'rejected' })
    expect(() => sim.receiveCommand('nope', command('c4', 40), START + 202)).toThrow(/not simulated here/)
    expect(sim.truth.commands().map((c) => c.status)).toEqual(['applied', 'rejected', 'rejected'])
  })

  it('sometimes reject a valid command or never answer it, with the commands fault', () => {
    const run = (faults: FaultOptions) => {
      const sim = new PlantSimulation({ plant, seed: 1, startS: START, faults })
      collect(sim, START, START + 10)
      for (let i = 0; i < 20; i++) sim.receiveCommand(sensor, command(`k${i}`, 40 + (i % 5)), START + 10)
      const messages = collect(sim, START + 10, START + 30)
      return {
        acks: messages.filter((m) => m.kind === 'ack').map((m) => parseSetpointAck(m.payload)!),
        fan: fanReadings(messages),
      }
    }
    const refused = run({ commands: { rejectProbability: 1 } })
    expect(refused.acks).toHaveLength(20)
    expect(refused.acks.every((a) => a.status === 'rejected' && /refused/.test(a.reason))).toBe(true)
    expect(refused.fan.every((r) => r.v === 50)).toBe(true)
    const silent = run({ commands: { unansweredProbability: 1 } })
    expect(silent.acks).toEqual([])
    expect(silent.fan.every((r) => r.v === 50)).toBe(true)
    const some = run({ commands: { rejectProbability: 0.3, unansweredProbability: 0.3 } })
    const statuses = some.acks.map((a) => a.status)
    expect(statuses.length).toBeGreaterThan(0)
    expect(statuses.length).toBeLessThan(20)
    expect(statuses).toContain('applied')
    expect(statuses).toContain('rejected')
  })

  it('lower the oven fan power with the cube of frequency, after a lag of tens of seconds', () => {
    const power = (setpoint: number | undefined) => {
      const sim = new PlantSimulation({ plant, seed: 1, startS: START })
      if (setpoint !== undefined) sim.receiveCommand(sensor, command('c', setpoint), START)
      const messages = collect(sim, START, START + 600)
      const p = decodeAll(messages).get(oven.devices[0]!)!.get('power')!
      return (from: number, to: number) => {
        const vs = p.v.filter((_, i) => p.t[i]! >= START + from && p.t[i]! < START + to)
        return vs.reduce((a, b) => a + b, 0) / vs.length
      }
    }
    const rated = power(undefined)
    const tuned = power(40)
    // Right after the command the fan has not slowed much yet; a few minutes later it has.
    expect(Math.abs(tuned(0, 5) - rated(0, 5)) / rated(0, 5)).toBeLessThan(0.03)
    expect(tuned(300, 600)).toBeLessThan(rated(300, 600) * 0.85)
  })

  it('reach a device in power-saving mode only when it wakes', () => {
    const sim = new PlantSimulation({
      plant,
      seed: 1,
      startS: START,
      faults: { psm: { share: 1, batchIntervalS: 120 } },
    })
    const first = collect(sim, START, START + 400)
    const wakes = first.filter((m) => m.deviceId === sensor).map((m) => m.sendAtS)
    expect(wakes.length).toBeGreaterThanOrEqual(2)
    const gaps = wakes.slice(1).map((w, i) => w - wakes[i]!)
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(108)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(133)
    const lastWake = wakes.at(-1)!
    sim.receiveCommand(sensor, command('p1', 36), START + 400)
    const next = collect(sim, START + 400, lastWake + 140)
    const ack = next.find((m) => m.kind === 'ack')!
    const nextWake = next.find((m) => m.deviceId === sensor && m.kind === 'up')!.sendAtS
    // Applied at the wake, and the ack says so in the device's time (CONTRACT.md §3 v1.1).
    expect(parseSetpointAck(ack.payload)).toEqual({ id: 'p1', status: 'applied', t: nextWake })
    expect(ack.sendAtS).toBe(nextWake)
    expect(nextWake).toBeGreaterThan(START + 400)
    const fan = fanReadings([...first, ...next])
    expect(fan.filter((r) => r.t <= nextWake).every((r) => r.v === 50)).toBe(true)
    const later = fanReadings(collect(sim, lastWake + 140, lastWake + 400))
    expect(later.length).toBeGreaterThan(0)
    expect(later.every((r) => r.v === 36)).toBe(true)
  })
})

/** Duplicate payloads of a device, and messages whose readings are older than an earlier one's. */
function anomalies(messages: OutgoingMessage[]): { duplicates: number; outOfOrder: number } {
  const seen = new Set<string>()
  const latest = new Map<string, number>()
  let duplicates = 0
  let outOfOrder = 0
  for (const m of messages) {
    if (m.kind !== 'up') continue
    const text = m.payload.toString('latin1')
    const key = `${m.deviceId}|${text}`
    if (seen.has(key)) duplicates++
    seen.add(key)
    const times = [...text.matchAll(/"bt":([0-9.]+)/g)].map((x) => Number(x[1]))
    const newest = Math.max(...times)
    if (newest < (latest.get(m.deviceId) ?? 0)) outOfOrder++
    latest.set(m.deviceId, Math.max(newest, latest.get(m.deviceId) ?? 0))
  }
  return { duplicates, outOfOrder }
}

describe('network faults', () => {
  const runWith = (faults: FaultOptions | undefined) =>
    collect(new PlantSimulation({ plant, seed: 2, startS: START, faults }), START, START + 900)

  it('never duplicate or reorder when off, nor with latency or power-saving mode alone', () => {
    expect(anomalies(runWith(undefined))).toEqual({ duplicates: 0, outOfOrder: 0 })
    expect(anomalies(runWith({ latency: { meanMs: 800, jitterMs: 1500 } }))).toEqual({ duplicates: 0, outOfOrder: 0 })
    expect(anomalies(runWith({ psm: { share: 0.5, batchIntervalS: 60 } }))).toEqual({ duplicates: 0, outOfOrder: 0 })
  })

  it('duplicate with loss and reorder with reorder', () => {
    const lossy = anomalies(runWith({ loss: { probability: 0.02, retransmitAfterS: 15 } }))
    expect(lossy.duplicates).toBeGreaterThan(0)
    expect(lossy.outOfOrder).toBeGreaterThan(0)
    const shuffled = anomalies(runWith({ reorder: { probability: 0.02 } }))
    expect(shuffled.duplicates).toBe(0)
    expect(shuffled.outOfOrder).toBeGreaterThan(0)
  })

  it('delay messages by the latency asked for, keeping each device in order', () => {
    const messages = runWith({ latency: { meanMs: 800, jitterMs: 300 } })
    const delays: number[] = []
    for (const m of messages) {
      const bt = Number(/"bt":([0-9.]+)/.exec(m.payload.toString('latin1'))![1])
      delays.push(m.sendAtS - bt)
    }
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length
    expect(mean).toBeGreaterThan(0.75)
    expect(mean).toBeLessThan(0.85)
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0.49)
  })

  it('keep drifting clocks within ppm × 6 h, with timestamps still increasing per device', () => {
    const sim = new PlantSimulation({ plant, seed: 2, startS: START, faults: { clockDriftPpm: 50 } })
    const messages = collect(sim, START, START + 3600)
    const maxError = sim.truth.maxClockErrorS()
    expect(maxError).toBeGreaterThan(0.1)
    expect(maxError).toBeLessThanOrEqual(50e-6 * 3600 + 0.001)
    let minStep = Number.POSITIVE_INFINITY
    for (const [, byName] of decodeAll(messages)) {
      for (const [, series] of byName) {
        for (let i = 1; i < series.t.length; i++) minStep = Math.min(minStep, series.t[i]! - series.t[i - 1]!)
      }
    }
    expect(minStep).toBeGreaterThan(0.99)
  })
})
