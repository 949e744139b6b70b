import { deserialize, serialize } from 'node:v8'
import type { PlantModel } from '@plantwatt/contract'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

// Issue 12: arbitrary packs through the reading pipeline never throw, every record is counted
// (accepted, duplicate or rejected with a reason, per device and in total), and the per-device
// structures stay within their stated bounds (device-names.ts, docs/processor.md): counted names
// ≤ maxProcessNames, newest readings and accounting's series ≤ that + the 5 always accepted, and
// counters only for devices of the plant, also after a checkpoint and restore. Seeded and bounded.

const NOW_S = 1_732_250_000
const RUNS = { seed: 20261206, numRuns: 60 }
const OVEN_A = '860100000000123'
const OVEN_B = '860100000000124'
const PV = '860100000000001'

const model: PlantModel = {
  version: 1,
  sites: [
    {
      id: 'yibin',
      timezone: 'Asia/Shanghai',
      carbon: { gridGPerKWh: 600, residualMixGPerKWh: 680, greenShare: 0.266 },
      meters: { pv: [PV], grid: [] },
      areas: [
        {
          id: 'electrode',
          lines: [
            {
              id: 'coating-1',
              equipment: [
                {
                  id: 'coater-1-oven',
                  type: 'oven',
                  ratedPowerW: 250000,
                  devices: [OVEN_A, OVEN_B],
                  tuning: {
                    setpoint: 'fan_hz',
                    unit: 'Hz',
                    min: 30,
                    max: 50,
                    maxStep: 2,
                    constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
                    mode: 'auto',
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  ],
} as PlantModel
const plant = new PlantIndex(model)
/** power, energy, output, and the oven's setpoint and constraint measure. */
const ALWAYS = 5

const name = fc.oneof(
  fc.constantFrom('power', 'energy', 'output', 'fan_hz', 'solvent_ppm'),
  fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/),
  fc.constantFrom('constructor', 'toString', 'a:__proto__', 'hasOwnProperty'),
  fc.string({ maxLength: 8 }),
)
const record = fc.record(
  {
    n: name,
    u: fc.constantFrom('W', 'Wh', 'count', 'Hz', ''),
    v: fc.oneof(fc.double({ min: -1e7, max: 1e7, noNaN: true }), fc.integer({ min: -10, max: 3000 })),
    s: fc.oneof(fc.double({ min: -10, max: 1e9, noNaN: true }), fc.nat({ max: 100_000 })),
    t: fc.oneof(fc.integer({ min: NOW_S - 700_000, max: NOW_S + 400 }), fc.integer({ min: -200, max: 0 })),
  },
  { requiredKeys: ['n'] },
)
const topicOf = fc.constantFrom(
  `sites/yibin/devices/${OVEN_A}/up`,
  `sites/yibin/devices/${OVEN_A}/up`,
  `sites/yibin/devices/${OVEN_B}/up`,
  `sites/yibin/devices/${PV}/up`,
  `sites/other/devices/${OVEN_A}/up`,
  'sites/yibin/devices/999999999999999/up',
  `sites/yibin/devices/${OVEN_A}/ack`,
)
const step = fc.oneof(
  { weight: 8, arbitrary: fc.record({ topic: topicOf, pack: fc.array(record, { maxLength: 24 }) }) },
  { weight: 1, arbitrary: fc.record({ topic: topicOf, bytes: fc.uint8Array({ maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ forget: fc.constantFrom(OVEN_A, PV, 'nope') }) },
)

function checkBounds(pipeline: ReadingPipeline, maxNames: number): void {
  expect(pipeline.devices.size).toBeLessThanOrEqual(plant.devices.size)
  let accepted = 0
  let duplicates = 0
  let rejected = 0
  for (const [id, counters] of pipeline.devices) {
    expect(plant.device(id)).toBeDefined()
    expect(counters.names?.size ?? 0).toBeLessThanOrEqual(maxNames)
    expect(counters.last?.size ?? 0).toBeLessThanOrEqual(maxNames + ALWAYS)
    expect(pipeline.accounting.otherMeasurements(id).length).toBeLessThanOrEqual(maxNames + ALWAYS)
    accepted += counters.accepted
    duplicates += counters.duplicates
    for (const count of Object.values(counters.rejected)) rejected += count ?? 0
  }
  expect(pipeline.stats.readingsAccepted).toBe(accepted)
  expect(pipeline.stats.readingsDuplicate).toBe(duplicates)
  expect(pipeline.stats.readingsRejected).toBe(rejected)
}

describe('reading pipeline: arbitrary packs keep every per-device structure within its bound', () => {
  it('never throws, counts every record, and holds the bounds, also across a checkpoint', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), fc.constantFrom(16, 3), (steps, maxProcessNames) => {
        let pipeline = new ReadingPipeline(plant, { maxProcessNames })
        let nowMs = NOW_S * 1000
        for (const [k, item] of steps.entries()) {
          nowMs += 1000
          if ('forget' in item) pipeline.forgetNames(item.forget)
          else {
            const payload = 'bytes' in item ? item.bytes : Buffer.from(JSON.stringify(item.pack))
            const before = pipeline.stats.readingsAccepted + pipeline.stats.readingsDuplicate
            const rejectedBefore = pipeline.stats.readingsRejected
            pipeline.ingest(item.topic, payload, nowMs)
            const handled =
              pipeline.stats.readingsAccepted +
              pipeline.stats.readingsDuplicate +
              pipeline.stats.readingsRejected -
              before -
              rejectedBefore
            // Never more outcomes than records (a whole-payload refusal counts one).
            if ('pack' in item) expect(handled).toBeLessThanOrEqual(Math.max(1, item.pack.length))
          }
          checkBounds(pipeline, maxProcessNames)
          if (k === Math.floor(steps.length / 2)) {
            // Through v8 serialisation, as checkpoint-file.ts writes it.
            pipeline = new ReadingPipeline(plant, { maxProcessNames }, deserialize(serialize(pipeline.checkpoint())))
            checkBounds(pipeline, maxProcessNames)
          }
        }
      }),
      RUNS,
    )
  })
})
