import { deserialize, serialize } from 'node:v8'
import { decodeDecodedPack, encodeDecodedPack } from '@plantwatt/contract'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { decodeUplink } from '../src/uplink-decode.ts'

// Issue 16: with broker workers, the SenML of an uplink is decoded and validated in the worker
// that received it, and the primary gets the decoded pack in binary. The primary still replays its
// journals from the raw payloads at start, so both routes must come to the same thing: the same
// readings accepted, the same rejections counted per device and reason, the same figures. Seeded.

const plant = new PlantIndex(examplePlant())
const NOW_S = 1_796_600_000
const RUNS = { seed: 20261207, numRuns: 12 }
const MAX_AGE_S = plant.sites.get('yibin')!.maxAgeS
const OVEN = '860100000000123'
const OTHER = '860100000000223'

const record = fc.record(
  {
    n: fc.oneof(fc.constantFrom('power', 'energy', 'output', 'temp_c'), fc.string({ maxLength: 6 })),
    u: fc.constantFrom('W', 'Wh', 'count', 'Cel', '', 'kW'),
    v: fc.oneof(fc.double({ min: -1e7, max: 1e7 }), fc.integer({ min: -10, max: 300_000 })),
    s: fc.nat({ max: 100_000 }),
    // Around the floors of too_old (the wall clock's and, a few minutes ahead of it, the site
    // clock's), ahead, relative, or absurd.
    t: fc.oneof(
      fc.integer({ min: NOW_S - MAX_AGE_S - 900, max: NOW_S - MAX_AGE_S + 900 }),
      fc.integer({ min: NOW_S - 600, max: NOW_S + 600 }),
      fc.integer({ min: -200, max: 0 }),
      fc.constant(NOW_S + 10 * 86_400),
    ),
  },
  { requiredKeys: ['n'] },
)
const topic = fc.constantFrom(
  `sites/yibin/devices/${OVEN}/up`,
  `sites/yibin/devices/${OTHER}/up`,
  `sites/elsewhere/devices/${OVEN}/up`,
  'sites/yibin/devices/999999999999999/up',
)
const step = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ topic, pack: fc.array(record, { maxLength: 12 }), advanceS: fc.nat({ max: 120 }) }),
  },
  { weight: 1, arbitrary: fc.record({ topic, bytes: fc.uint8Array({ maxLength: 48 }), advanceS: fc.constant(1) }) },
)

describe('uplinks decoded where they were received', () => {
  it('count and apply exactly as the raw payload does, through the binary form', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 16 }), fc.boolean(), (steps, acceptOld) => {
        const raw = new ReadingPipeline(plant, { acceptOld })
        const decoded = new ReadingPipeline(plant, { acceptOld })
        let nowMs = NOW_S * 1000
        for (const item of steps) {
          nowMs += item.advanceS * 1000
          const payload = 'bytes' in item ? Buffer.from(item.bytes) : Buffer.from(JSON.stringify(item.pack))
          raw.ingest(item.topic, payload, nowMs)
          // What a worker does (undefined: not a known device's uplink, sent raw), then the wire.
          const pack = decodeUplink(plant, item.topic, payload, nowMs, acceptOld)
          if (pack === undefined) decoded.ingest(item.topic, payload, nowMs)
          else decoded.ingestDecoded(item.topic, decodeDecodedPack(encodeDecodedPack(pack)), nowMs)
        }
        expect(decoded.stats).toEqual(raw.stats)
        expect(deserialize(serialize(decoded.checkpoint()))).toEqual(deserialize(serialize(raw.checkpoint())))
        const site = plant.sites.get('yibin')!.node
        expect(decoded.figures(site)).toEqual(raw.figures(site))
      }),
      RUNS,
    )
  })

  it('keeps a decoded pack whole through the binary form: names, units, fields, times, reasons', () => {
    const pack = decodeUplink(
      plant,
      `sites/yibin/devices/${OVEN}/up`,
      Buffer.from(
        JSON.stringify([
          { bn: 'urn:dev:', n: 'power', u: 'W', v: 1500.25, t: NOW_S },
          { n: 'energy', u: 'Wh', s: 12_345_678.5 },
          { n: 'température', v: -3 },
          { n: 'power', u: 'kW', v: 1 },
          { n: 'power', v: 1, t: NOW_S + 86_400 },
          { v: 'x' },
        ]),
      ),
      NOW_S * 1000,
      false,
    )!
    // Both fields, a unit and none, and the rejections: whatever the decode made of them, kept.
    expect(pack.readings.map((reading) => reading.field)).toEqual(expect.arrayContaining(['v', 's']))
    expect(pack.rejections.map((rejection) => rejection.reason)).toEqual(
      expect.arrayContaining(['future', 'malformed', 'unit_mismatch']),
    )
    const back = decodeDecodedPack(encodeDecodedPack(pack))
    expect(back.readings).toEqual(pack.readings)
    expect(back.rejections.map(({ index, reason }) => ({ index, reason }))).toEqual(
      pack.rejections.map(({ index, reason }) => ({ index, reason })),
    )
  })
})
