import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// The broker and the simulator are reached by path: a service may not depend on another
// service or on the simulator, but this test runs them together as `plantwatt up` and
// `plantwatt replay` do.
import { createBroker } from '../../../services/broker/src/broker.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { FAULT_PRESETS, replay, simulate } from '../../../simulators/fleet/src/run/index.ts'
import { Processor } from '../src/processor.ts'

// CONTRACT.md §7: figures run on event time, so one recording replayed through the real broker,
// ingest journal and processor at 1× and at full speed (over two sessions processes, so devices
// interleave differently) ends with identical buckets of every scope and identical idle alerts.

const SECRET = 'replay-determinism-secret'
const logger = pino({ level: 'silent' })
// 21:00 in Yibin: machines stand idle around the shift change.
const START_S = Date.UTC(2025, 2, 3, 13, 0) / 1000
const DURATION_S = 180

const model = generatePlant({ devices: 40, seed: 3 })
// Short enough that idle episodes are raised and cleared within the recording: alerts follow
// readings once the site clock has passed them by latenessS (§7), an idle clear once the minute
// holding its end is final (its end + latenessS, see detection.ts HeldEvent). Longer than the
// replay's lookahead at full speed (10 s: one worker may run that far ahead of the other) plus the
// faults' retransmission delay (2 s), so that at full speed, too, every reading arrives within
// latenessS — the condition under which §7 promises identical results (asserted below).
for (const site of model.sites) {
  site.latenessS = 20
  for (const area of site.areas)
    for (const line of area.lines)
      for (const equipment of line.equipment) if (equipment.idle) equipment.idle.afterS = 20
}
// NB-IoT faults but no power-saving batches, which arrive up to a minute after their readings:
// beyond this test's 10 s lateness they would be taken as they arrive, which §7 allows to differ.
const { psm: _psm, ...faults } = FAULT_PRESETS.nbiot!

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return predicate()
}

describe('a recording replayed at 1× and at full speed', () => {
  let dir: string
  let recording: string
  let recorded: number

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-replay-'))
    recording = join(dir, 'run.ndjson.gz')
    const summary = await simulate({
      plant: model,
      seed: 7,
      startS: START_S,
      durationS: DURATION_S,
      speed: 'max',
      connection: null,
      workers: 1,
      faults,
      record: recording,
    })
    recorded = summary.record!.messages!
  }, 60_000)

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function replayThroughPlantwatt(name: string, speed: 1 | 'max', workers: number) {
    const plant = new PlantIndex(model)
    const journal = await IngestJournal.open(join(dir, name, 'journal'))
    const broker = await createBroker({ plant, deviceSecret: SECRET, logger, uplinkJournal: journal })
    // The recording is from 2025, older than maxAgeS: replayed as `plantwatt up --accept-old` does (§7).
    const processor = new Processor({ plant, bus: broker.bus, logger, journal, pipeline: { acceptOld: true } })
    await processor.start()
    const port = await broker.listen({ host: '127.0.0.1', port: 0 })
    try {
      const summary = await replay({
        file: recording,
        speed,
        workers,
        connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
      })
      expect(summary.messages.acknowledged).toBe(recorded)
      expect(await until(() => processor.stats.messages === recorded, 10_000)).toBe(true)
      const { accounting, detection, stats } = processor.state
      return {
        wallSeconds: summary.wallSeconds,
        buckets: [...plant.scopes.keys()].map((scope) => [
          scope,
          accounting.history(scope, '1m', START_S * 1000, (START_S + 2 * DURATION_S) * 1000),
        ]),
        alerts: detection.alertsSince(0).events,
        behindWatermark: detection.behindWatermark,
        accepted: stats.readingsAccepted,
        duplicates: stats.readingsDuplicate,
      }
    } finally {
      await broker.close()
      await journal.close()
      await processor.stop()
    }
  }

  it('gives identical buckets and idle alerts', async () => {
    const real = await replayThroughPlantwatt('real-time', 1, 1)
    const fast = await replayThroughPlantwatt('full-speed', 'max', 2)
    // The 1× replay took the recording's time; the full-speed one far less.
    expect(real.wallSeconds).toBeGreaterThan(0.9 * DURATION_S)
    expect(fast.wallSeconds).toBeLessThan(real.wallSeconds / 4)

    expect(real.accepted).toBeGreaterThan(4000)
    expect(real.duplicates).toBeGreaterThan(0)
    expect(real.alerts.some(({ event }) => event.kind === 'idle' && event.state === 'raised')).toBe(true)
    expect(real.alerts.some(({ event }) => event.kind === 'idle' && event.state === 'cleared')).toBe(true)
    expect([real.behindWatermark, fast.behindWatermark]).toEqual([0, 0])
    expect(fast.buckets).toEqual(real.buckets)
    expect(fast.alerts).toEqual(real.alerts)
    expect([fast.accepted, fast.duplicates]).toEqual([real.accepted, real.duplicates])
  }, 360_000)
})
