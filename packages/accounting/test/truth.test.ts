// Against the simulator's ground truth (issue 5 "done when"): a seeded plant with NB-IoT faults on
// (power-saving batches, latency, loss with duplicates, reordering, counter resets), every published
// message decoded and fed in arrival order; energy per equipment, line and site within 0.1 %.
// The same messages in another interleaving across devices (per-device order kept, like a replay
// at another speed) give identical final buckets; a checkpoint half-way changes nothing.

import { decodeSenml, type PlantModel } from '@plantwatt/contract'
import { generatePlant, type OutgoingMessage, PlantSimulation } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import { beforeAll, describe, expect, it } from 'vitest'
import { Accounting, type BucketEvent } from '../src/index.ts'

const START = Date.UTC(2025, 2, 3, 13, 0) / 1000
const HOURS = 3
const END = START + HOURS * 3600
const BATCH_S = 120

function collect(sim: PlantSimulation, fromS: number, toS: number): OutgoingMessage[] {
  const out: OutgoingMessage[] = []
  for (let t = fromS; t < toS; t = Math.min(toS, t + 60)) out.push(...sim.advanceTo(Math.min(toS, t + 60)))
  return out
}

function feed(engine: Accounting, plant: PlantIndex, messages: OutgoingMessage[], maxTime = END): number {
  let accepted = 0
  for (const m of messages) {
    if (m.kind !== 'up') continue
    const device = plant.device(m.deviceId)!
    const { readings } = decodeSenml(m.payload, { receivedAt: m.sendAtS })
    for (const r of readings) {
      if (r.time > maxTime) continue
      if (engine.accept(device, r) === 'accepted') accepted++
    }
  }
  return accepted
}

/** Another arrival order: devices round-robin in chunks, each device's own messages kept in order. */
function interleave(messages: OutgoingMessage[], chunk: number): OutgoingMessage[] {
  const byDevice = new Map<string, OutgoingMessage[]>()
  for (const m of messages) {
    const list = byDevice.get(m.deviceId)
    if (list) list.push(m)
    else byDevice.set(m.deviceId, [m])
  }
  const queues = [...byDevice.values()].reverse()
  const out: OutgoingMessage[] = []
  const at = new Array(queues.length).fill(0)
  let left = messages.length
  while (left > 0) {
    for (let q = 0; q < queues.length; q++) {
      const list = queues[q]!
      for (let k = 0; k < chunk * (1 + (q % 3)) && at[q] < list.length; k++) {
        out.push(list[at[q]++]!)
        left--
      }
    }
  }
  return out
}

function finalBuckets(engine: Accounting, plant: PlantIndex) {
  const out: Record<string, unknown> = {}
  for (const scope of plant.scopes.keys()) {
    for (const step of ['1m', '15m', '1h'] as const) out[`${scope}|${step}`] = engine.history(scope, step, 0, 1e15)
  }
  return out
}

describe('energy against the simulator ground truth (faults on)', () => {
  let model: PlantModel
  let plant: PlantIndex
  let sim: PlantSimulation
  let messages: OutgoingMessage[]
  let engine: Accounting
  let totals: Map<string, number>
  let minutes: Map<string, { startMs: number; wh: Float64Array }>

  beforeAll(() => {
    model = generatePlant({ devices: 60, seed: 3 })
    plant = new PlantIndex(model)
    sim = new PlantSimulation({
      plant: model,
      seed: 11,
      startS: START,
      faults: {
        psm: { share: 0.3, batchIntervalS: BATCH_S },
        latency: { meanMs: 400, jitterMs: 300 },
        loss: { probability: 0.02, retransmitAfterS: 20 },
        reorder: { probability: 0.02 },
        counterResets: { perDevicePerDay: 24 },
      },
    })
    messages = collect(sim, START, END)
    // The truth as it stands at END; then let batches, held and retransmitted messages arrive.
    totals = new Map(sim.truth.equipmentScopes().map((scope) => [scope, sim.truth.energyTotalWh(scope)]))
    minutes = new Map(sim.truth.equipmentScopes().map((scope) => [scope, sim.truth.energyByMinute(scope)]))
    messages.push(...collect(sim, END, END + 3 * BATCH_S + 60))
    engine = new Accounting(plant)
    feed(engine, plant, messages)
  }, 120_000)

  it('counts duplicates once and rejects nothing else', () => {
    expect(engine.counters.duplicate).toBeGreaterThan(0)
    expect(engine.counters.out_of_range).toBe(0)
    expect(engine.counters.too_old).toBe(0)
  })

  it('gives each equipment, line and the site its true energy within 0.1 %', () => {
    const lineTruth = new Map<string, number>()
    let siteTruth = 0
    let checked = 0
    for (const scope of sim.truth.equipmentScopes()) {
      const truth = totals.get(scope)!
      const rows = engine.history(scope, '1m', 0, 1e15)
      const got = rows.reduce((s, r) => s + r.energyWh, 0)
      expect(Math.abs(got - truth), scope).toBeLessThanOrEqual(truth * 1e-3)
      const line = scope.split('/').slice(0, 3).join('/')
      lineTruth.set(line, (lineTruth.get(line) ?? 0) + truth)
      siteTruth += truth
      checked++
    }
    expect(checked).toBeGreaterThan(20)
    for (const [line, truth] of lineTruth) {
      const got = engine.history(line, '15m', 0, 1e15).reduce((s, r) => s + r.energyWh, 0)
      expect(Math.abs(got - truth), line).toBeLessThanOrEqual(truth * 1e-3)
    }
    const site = engine.history('yibin', '1h', 0, 1e15).reduce((s, r) => s + r.energyWh, 0)
    expect(Math.abs(site - siteTruth)).toBeLessThanOrEqual(siteTruth * 1e-3)
  })

  it('splits energy across minutes like the truth', () => {
    let worst = 0
    for (const scope of sim.truth.equipmentScopes()) {
      const truth = minutes.get(scope)!
      const rows = engine.history(scope, '1m', 0, 1e15)
      for (const row of rows) {
        const m = (row.t - truth.startMs) / 60_000
        if (row.t >= END * 1000) continue
        const expected = truth.wh[m]
        if (expected === undefined) continue
        worst = Math.max(worst, Math.abs(row.energyWh - expected))
      }
    }
    expect(worst).toBeLessThan(0.1)
  })

  it('gives identical final buckets for another interleaving across devices', () => {
    const other = new Accounting(plant)
    feed(other, plant, interleave(messages, 3))
    expect(finalBuckets(other, plant)).toEqual(finalBuckets(engine, plant))
  }, 120_000)

  it('carries on from a checkpoint exactly as an uninterrupted run', () => {
    const half = Math.floor(messages.length / 2)
    const straight = new Accounting(plant)
    const first = new Accounting(plant)
    const events: BucketEvent[] = []
    const eventsStraight: BucketEvent[] = []
    feed(straight, plant, messages.slice(0, half))
    feed(first, plant, messages.slice(0, half))
    eventsStraight.push(...straight.takeBucketEvents())
    events.push(...first.takeBucketEvents())
    first.setIdleSpan(sim.truth.equipmentScopes()[0]!, START + 600, undefined)
    straight.setIdleSpan(sim.truth.equipmentScopes()[0]!, START + 600, undefined)
    const restored = Accounting.restore(plant, first.checkpoint())
    feed(straight, plant, messages.slice(half))
    feed(restored, plant, messages.slice(half))
    restored.setIdleSpan(sim.truth.equipmentScopes()[0]!, START + 600, START + 3000)
    straight.setIdleSpan(sim.truth.equipmentScopes()[0]!, START + 600, START + 3000)
    eventsStraight.push(...straight.takeBucketEvents())
    events.push(...restored.takeBucketEvents())
    expect(events.length).toBe(eventsStraight.length)
    expect(events).toEqual(eventsStraight)
    expect(finalBuckets(restored, plant)).toEqual(finalBuckets(straight, plant))
    expect(restored.live('yibin')).toEqual(straight.live('yibin'))
    expect(restored.counters).toEqual(straight.counters)
  }, 120_000)
})
