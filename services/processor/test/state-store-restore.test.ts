import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Bus } from '@plantwatt/bus'
import { BUCKET_STEPS } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { CheckpointFile } from '../src/checkpoint-file.ts'
import { Processor } from '../src/processor.ts'
import { openBusAndDir } from './support/bus-and-dir.ts'
import { feedUplinks, simulatedUplinks } from './support/simulated-uplinks.ts'

// Issue 13: the checkpoint writes only the minutes of accounting's ring that changed (as columns,
// in the processor's state store) with the rest of the state, in one transaction. A processor that
// dies right after its second (incremental) checkpoint restarts with accounting equal to the one
// that died, bucket for bucket at every step and scope, the ring's columns byte for byte, and the
// live power of every equipment as it was, before any new reading. Real LMDB, journal and bus.

const model = generatePlant({ devices: 40, seed: 5 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 13, 0) / 1000
const END_S = START_S + 3 * 3600
const logger = pino({ level: 'silent' })

const simulatedMessages = () => simulatedUplinks(model, { seed: 9, startS: START_S, endS: END_S })

const feed = feedUplinks

/** Every bucket accounting holds, every step and scope, and every equipment's live power. */
function held(processor: Processor) {
  const { accounting } = processor.state
  const buckets = [...plant.scopes.keys()].flatMap((scope) =>
    BUCKET_STEPS.map((step) => [scope, step, accounting.history(scope, step, 0, Number.MAX_SAFE_INTEGER)]),
  )
  const power = [...plant.scopes.values()].map((node) => [
    node.scope,
    processor.figures(node).powerW,
    processor.state.equipmentLive(node)?.powerW,
  ])
  return { buckets, power, counters: { ...accounting.counters } }
}

describe('processor state store: incremental checkpoints restore the ring exactly', () => {
  let dir: string
  let bus: Bus
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ dir, bus, close } = await openBusAndDir('plantwatt-state-store-'))
  })

  afterAll(() => close?.())

  async function startProcessor(clock: { ms: number }, name = '.', log = logger) {
    const journal = await IngestJournal.open(join(dir, name, 'journal'), { now: () => clock.ms })
    const processor = new Processor({
      plant,
      bus,
      logger: log,
      journal,
      checkpointPath: join(dir, name, 'processor', 'checkpoint.v8'),
      now: () => clock.ms,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    return { journal, processor }
  }

  it('equals the processor that died, bucket for bucket and column for column, live power included', async () => {
    const messages = simulatedMessages()
    const clock = { ms: START_S * 1000 }
    const first = await startProcessor(clock)
    await feed(first.journal, clock, messages.slice(0, Math.floor(messages.length / 2)))
    await first.processor.checkpoint()
    await feed(first.journal, clock, messages.slice(Math.floor(messages.length / 2)))
    await first.processor.checkpoint()
    const secondColumns = first.processor.lastCheckpoint!.columns
    expect(await readdir(join(dir, 'processor'))).toEqual(['state'])
    const before = held(first.processor)
    expect(before.power.filter(([, powerW]) => typeof powerW === 'number' && powerW > 0).length).toBeGreaterThan(10)
    const ring = first.processor.state.accounting.snapshot(true).columns
    // The second checkpoint wrote the minutes that changed since the first, not every one with data.
    const withData = ring.filter((column) => column.bytes.byteLength > 0).length
    expect(secondColumns).toBeGreaterThan(0)
    expect(secondColumns).toBeLessThan(withData * 0.75)
    // Dies here: no stop(), nothing after the checkpoint.
    first.journal.onDurable = () => {}
    await first.journal.close()

    const second = await startProcessor(clock)
    expect(held(second.processor)).toEqual(before)
    expect(second.processor.state.accounting.snapshot(true).columns).toEqual(ring)
    await second.processor.stop()
    await second.journal.close()
  }, 120_000)

  it('restores a checkpoint file of an older version once, then supersedes it', async () => {
    const messages = simulatedMessages().slice(0, 3000)
    const clock = { ms: START_S * 1000 }
    const first = await startProcessor(clock, 'legacy')
    await feed(first.journal, clock, messages)
    await first.processor.checkpoint()
    const before = held(first.processor)
    // What an older version wrote: the whole state, ring included, in processor/checkpoint.v8.
    const legacyPath = join(dir, 'legacy', 'processor', 'checkpoint.v8')
    await new CheckpointFile(legacyPath).write({
      // The journal position the processor's own checkpoint just recorded.
      journalSeq: first.processor.journalPositions().get(0) ?? 0,
      savedAt: clock.ms,
      pipeline: first.processor.state.checkpoint(),
      tuning: first.processor.tuning.checkpoint(),
    })
    first.journal.onDurable = () => {}
    await first.journal.close()
    await rm(join(dir, 'legacy', 'processor', 'state'), { recursive: true })

    const second = await startProcessor(clock, 'legacy')
    expect(held(second.processor)).toEqual(before)
    await second.processor.checkpoint()
    expect(await readdir(join(dir, 'legacy', 'processor'))).toEqual(['state'])
    const ring = second.processor.state.accounting.snapshot(true).columns
    await second.processor.stop()
    await second.journal.close()
    // The state store now holds it all, the ring included.
    const third = await startProcessor(clock, 'legacy')
    expect(held(third.processor)).toEqual(before)
    expect(third.processor.state.accounting.snapshot(true).columns).toEqual(ring)
    await third.processor.stop()
    await third.journal.close()
  }, 120_000)

  it('refuses a legacy checkpoint file that is not one with a logged error, and starts', async () => {
    await mkdir(join(dir, 'garbage', 'processor'), { recursive: true })
    await writeFile(join(dir, 'garbage', 'processor', 'checkpoint.v8'), 'not a checkpoint')
    const lines: { level: number; msg: string }[] = []
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) })
    const clock = { ms: START_S * 1000 }
    const { journal, processor } = await startProcessor(clock, 'garbage', log)
    expect(processor.stats.readingsAccepted).toBe(0)
    expect(lines.some((line) => line.level === 50 && /older version unreadable/.test(line.msg))).toBe(true)
    await processor.stop()
    await journal.close()
  })
})
