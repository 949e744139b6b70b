import { deviceTopic } from '@plantwatt/contract'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
// The simulator is reached by path, as the repository's other cross-workspace tests do.
import { type OutgoingMessage, PlantSimulation } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { FAULT_PRESETS } from '../../../simulators/fleet/src/run/faults.ts'

// CONTRACT.md §7 without the network: the same messages in different arrival interleavings (each
// device's own order kept, every message within latenessS of its send time) give the same buckets
// and the same alert log — seq, state, at and data included. The fast sibling of
// replay-determinism.test.ts, which does this through the broker and the ingest journal.

const START_S = Date.UTC(2025, 2, 3, 13, 0) / 1000
const DURATION_S = 3600
// A report every 2 s and up to 6 s of extra delay: with the faults' retransmissions (2 s) every
// message still arrives within latenessS (10 s) of the site clock passing its readings.
const REPORT_INTERVAL_S = 2
const MAX_DELAY_S = 6
const model = generatePlant({ devices: 100, seed: 3 })
for (const site of model.sites) {
  site.latenessS = 10
  for (const area of site.areas)
    for (const line of area.lines)
      for (const equipment of line.equipment) if (equipment.idle) equipment.idle.afterS = 20
}
const { psm: _psm, ...faults } = FAULT_PRESETS.nbiot!

function messages(): OutgoingMessage[] {
  const sim = new PlantSimulation({
    plant: model,
    seed: 7,
    startS: START_S,
    reportIntervalS: REPORT_INTERVAL_S,
    faults,
  })
  const out: OutgoingMessage[] = []
  for (let t = START_S + 10; t <= START_S + DURATION_S; t += 10) out.push(...sim.advanceTo(t))
  return out.filter((m) => m.kind === 'up')
}

/** A deterministic pseudo-random arrival order: each message delayed by up to `maxDelayS`, each
 * device's messages kept in their order. */
function interleave(list: OutgoingMessage[], seed: number, maxDelayS: number): OutgoingMessage[] {
  let x = seed >>> 0 || 1
  const rand = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
  const lastOf = new Map<string, number>()
  const keyed = list.map((m, i) => {
    const arrive = Math.max(m.sendAtS + rand() * maxDelayS, lastOf.get(m.deviceId) ?? Number.NEGATIVE_INFINITY)
    lastOf.set(m.deviceId, arrive)
    return { m, arrive, i }
  })
  keyed.sort((a, b) => a.arrive - b.arrive || a.i - b.i)
  return keyed.map((k) => k.m)
}

function run(list: OutgoingMessage[]) {
  const plant = new PlantIndex(model)
  const pipeline = new ReadingPipeline(plant)
  for (const m of list) {
    pipeline.ingest(deviceTopic(m.site, m.deviceId, 'up'), m.payload, m.sendAtS * 1000)
    pipeline.takeAlertEvents()
    pipeline.takeBucketEvents()
  }
  return {
    buckets: [...plant.scopes.keys()].map((scope) => [
      scope,
      pipeline.accounting.history(scope, '1m', START_S * 1000, (START_S + 2 * DURATION_S) * 1000),
    ]),
    alerts: pipeline.detection.alertsSince(0).events,
    behindWatermark: pipeline.detection.behindWatermark,
  }
}

describe('the same messages in different interleavings', () => {
  it('give identical buckets and alerts', () => {
    const list = messages()
    const inOrder = run(list)
    const clears = inOrder.alerts.filter(({ event }) => event.kind === 'idle' && event.state === 'cleared')
    expect(clears.length).toBeGreaterThan(20)
    // Episodes longer than the readings retained (first minute from its bucket) and re-raises
    // within a minute of a clear (held behind it) are among them.
    expect(clears.some(({ event }) => (event.data.durationS as number) > 300)).toBe(true)
    expect(inOrder.alerts.some(({ event }) => event.state === 'raised' && event.data.flapping)).toBe(true)
    for (const seed of [1, 2]) {
      const other = run(interleave(list, seed, MAX_DELAY_S))
      expect(other.behindWatermark).toBe(0)
      expect(other.buckets).toEqual(inOrder.buckets)
      expect(other.alerts).toEqual(inOrder.alerts)
    }
  })
})
