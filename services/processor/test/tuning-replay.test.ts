import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { SetpointEvent } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// The broker and the simulator are reached by path, as in replay-determinism.test.ts: `plantwatt
// up` and `plantwatt replay` run them together with the processor.
import { createBroker } from '../../../services/broker/src/broker.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { replay, simulate } from '../../../simulators/fleet/src/run/index.ts'
import { Processor } from '../src/processor.ts'

// Issue 15, CONTRACT.md §3 and §7: tuning decisions run on event time and command ids derive from
// the equipment and the decision's event time. A closed-loop run is recorded (the live processor
// tunes the simulated ovens through the real broker; sleeping NB-IoT devices answer at their
// wakes), then its readings and acks are replayed through the real broker, ingest journal and a
// fresh processor in `auto` mode: at 1×, at full speed, and at full speed with the processor
// crashing mid-run and resuming from its checkpoint and the journal. Every replay makes the same
// moves with the same ids as the recorded run, so the recorded acks answer them: moves are applied.

const SECRET = 'tuning-replay-secret'
const logger = pino({ level: 'silent' })
// Tuesday 02:00 UTC = 10:00 in Yibin: the plant is producing.
const START_S = Date.UTC(2025, 2, 4, 2, 0) / 1000
const DURATION_S = 90
const model = generatePlant({ devices: 300, seed: 5 })
// Short dwells so that a recording short enough to replay at 1× holds many moves.
const TUNING = { dwellS: 6, minReadings: 3 }
// Some devices sleep and take commands at their wakes, 10 s apart.
const FAULTS = { psm: { share: 0.3, batchIntervalS: 10 } }

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return predicate()
}

/** Device messages the processor took: uplinks (the pipeline's count) and acks (the tuning loop's). */
const received = (processor: Processor) =>
  processor.stats.messages + processor.tuning.stats.acks + processor.tuning.stats.acksRejected

/**
 * Each tuned equipment's setpoint events in order, without their seq: one equipment's events are
 * in its event-time order whatever the speed, while the plant-wide seq interleaves equipment as
 * their messages arrived (the same holds for alerts of different sites).
 */
function moves(processor: Processor): Record<string, SetpointEvent[]> {
  const out: Record<string, SetpointEvent[]> = {}
  for (const { event } of processor.tuning.log.since(0).events) {
    out[event.scope] ??= []
    out[event.scope]!.push(event)
  }
  return out
}

describe('a recorded closed-loop tuning run replayed in auto mode', () => {
  let dir: string
  let recording: string
  let recorded: number
  let live: Record<string, SetpointEvent[]>

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-tuning-replay-'))
    recording = join(dir, 'closed-loop.ndjson.gz')
    const plant = new PlantIndex(model)
    const broker = await createBroker({ plant, deviceSecret: SECRET, logger })
    const processor = new Processor({ plant, bus: broker.bus, logger, pipeline: { acceptOld: true }, tuning: TUNING })
    await processor.start()
    const port = await broker.listen({ host: '127.0.0.1', port: 0 })
    try {
      const summary = await simulate({
        plant: model,
        seed: 3,
        startS: START_S,
        durationS: DURATION_S,
        speed: 5,
        reportIntervalS: 2,
        connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
        workers: 1,
        faults: FAULTS,
        record: recording,
      })
      recorded = summary.record!.messages!
      expect(await until(() => received(processor) >= recorded, 10_000)).toBe(true)
      live = moves(processor)
    } finally {
      await broker.close()
      await processor.stop()
    }
  }, 60_000)

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function replayThroughPlantwatt(name: string, speed: 1 | 'max', crash: boolean) {
    const plant = new PlantIndex(model)
    const journal = await IngestJournal.open(join(dir, name, 'journal'))
    const broker = await createBroker({ plant, deviceSecret: SECRET, logger, uplinkJournal: journal })
    const start = async () => {
      const processor = new Processor({
        plant,
        bus: broker.bus,
        logger,
        journal,
        checkpointPath: join(dir, name, 'checkpoint.v8'),
        checkpointIntervalMs: 3_600_000,
        pipeline: { acceptOld: true },
        tuning: TUNING,
      })
      await processor.start()
      return processor
    }
    let processor = await start()
    const port = await broker.listen({ host: '127.0.0.1', port: 0 })
    let crashedAt: number | undefined
    try {
      const run = replay({
        file: recording,
        speed,
        workers: 1,
        connection: { brokers: [{ host: '127.0.0.1', port }], deviceSecret: SECRET },
      })
      if (crash) {
        // A checkpoint a third of the way, then the processor dies at two thirds: what came after
        // the checkpoint is in the journal only.
        expect(await until(() => processor.stats.messages >= recorded / 3, 60_000)).toBe(true)
        await processor.checkpoint()
        expect(await until(() => processor.stats.messages >= (2 * recorded) / 3, 60_000)).toBe(true)
        journal.onDurable = () => {}
        crashedAt = processor.stats.messages
      }
      const summary = await run
      expect(summary.messages.acknowledged).toBe(recorded)
      if (crash) processor = await start()
      expect(await until(() => received(processor) >= recorded, 10_000)).toBe(true)
      return { moves: moves(processor), crashedAt }
    } finally {
      await broker.close()
      await processor.stop()
      await journal.close()
    }
  }

  it('makes the same moves with the same ids at 1×, at full speed and across a crash', async () => {
    const all = Object.values(live).flat()
    expect(all.filter((e) => e.status === 'applied').length).toBeGreaterThanOrEqual(20)
    expect(new Set(all.map((e) => e.id)).size).toBeGreaterThanOrEqual(20)
    const real = await replayThroughPlantwatt('real-time', 1, false)
    expect(real.moves).toEqual(live)
    const fast = await replayThroughPlantwatt('full-speed', 'max', false)
    expect(fast.moves).toEqual(live)
    const crashed = await replayThroughPlantwatt('crash', 'max', true)
    expect(crashed.crashedAt).toBeLessThan(recorded)
    expect(crashed.moves).toEqual(live)
  }, 240_000)
})
