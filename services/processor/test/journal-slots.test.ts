import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { deviceTopic } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OutgoingMessage } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { decodeState } from '../src/checkpoint-file.ts'
import { Processor } from '../src/processor.ts'
import { ProcessorStateStore } from '../src/state-store.ts'
import { simulatedUplinks } from './support/simulated-uplinks.ts'

// `plantwatt up` over several worker processes (issue 16): each worker has its own ingest
// journal (a slot), and the processor's checkpoint records, per slot, the last record applied.
// A processor that crashes between checkpoints replays every slot from its own position and ends
// with the same figures as a run without a crash; each journal is released up to its own position.

const model = generatePlant({ devices: 40, seed: 5 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 13, 0) / 1000
const END_S = START_S + 60 * 60
const logger = pino({ level: 'silent' })

const simulatedMessages = () => simulatedUplinks(model, { seed: 9, startS: START_S, endS: END_S })

/** A device stays on one worker's journal (a connection), as a device's order is what its session keeps. */
function slotOf(deviceId: string): number {
  let hash = 0
  for (const char of deviceId) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  return hash % 2
}

/**
 * Appends messages as the workers would, each received at its send time, one send time after the
 * other (both journals made durable before the next), so that the live order across slots is the
 * receipt order a replay merges by, as it is within a few milliseconds on real workers.
 */
async function feed(journals: IngestJournal[], clock: { ms: number }, messages: OutgoingMessage[]): Promise<void> {
  for (let k = 0; k < messages.length; ) {
    const at = messages[k]!.sendAtS
    const group: OutgoingMessage[] = []
    for (; k < messages.length && messages[k]!.sendAtS === at; k++) group.push(messages[k]!)
    clock.ms = at * 1000
    await Promise.all(
      group.map(
        (message) =>
          new Promise<void>((resolve, reject) => {
            journals[slotOf(message.deviceId)]!.append(
              deviceTopic(message.site, message.deviceId, 'up'),
              message.payload,
              (error) => (error ? reject(error) : resolve()),
            )
          }),
      ),
    )
  }
}

function finalState(processor: Processor) {
  const { accounting, stats } = processor.state
  const history = [...plant.scopes.keys()].map((scope) => [
    scope,
    accounting.history(scope, '1m', START_S * 1000, (END_S + 3600) * 1000),
  ])
  return { history, accepted: stats.readingsAccepted, duplicates: stats.readingsDuplicate }
}

describe('processor over several journal slots', () => {
  let dir: string
  let aedes: Aedes
  let bus: Bus
  let messages: OutgoingMessage[]

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-slots-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
    messages = simulatedMessages()
  })

  afterAll(async () => {
    await bus?.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  async function start(name: string, clock: { ms: number }) {
    const journals = await Promise.all(
      [0, 1].map((slot) =>
        IngestJournal.open(join(dir, name, `journal-${slot}`), { now: () => clock.ms, segmentBytes: 64 * 1024 }),
      ),
    )
    const processor = new Processor({
      plant,
      bus,
      logger,
      journals: new Map(journals.map((journal, slot) => [slot, journal])),
      checkpointPath: join(dir, name, 'checkpoint.v8'),
      now: () => clock.ms,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    return { journals, processor }
  }

  it('replays each slot from its own checkpointed sequence after a crash', async () => {
    const clock = { ms: START_S * 1000 }
    const whole = await start('whole', clock)
    await feed(whole.journals, clock, messages)
    const expected = finalState(whole.processor)
    expect(expected.accepted).toBeGreaterThan(5000)
    await whole.processor.stop()
    for (const journal of whole.journals) await journal.close()

    const half = Math.floor(messages.length / 2)
    const threeQuarters = Math.floor((messages.length * 3) / 4)
    const first = await start('crashed', clock)
    await feed(first.journals, clock, messages.slice(0, half))
    await first.processor.checkpoint()
    // The checkpoint is the processor's state store (next to the checkpoint path): its state's blob.
    const store = new ProcessorStateStore(join(dir, 'crashed', 'state'))
    const blob = store.readState()
    const written = blob && decodeState(blob, (name) => store.readArray(name))
    // One position per slot, each the last record of that slot's journal.
    expect(written?.journalSeqs).toEqual({ 0: first.journals[0]!.lastSeq, 1: first.journals[1]!.lastSeq })
    expect(first.processor.journalPositions()).toEqual(
      new Map([
        [0, first.journals[0]!.lastSeq],
        [1, first.journals[1]!.lastSeq],
      ]),
    )
    // Both journals were released up to their own position: old segments are gone.
    for (const slot of [0, 1]) {
      const segments = await readdir(join(dir, 'crashed', `journal-${slot}`))
      expect(segments.length).toBeLessThan(3)
    }
    await feed(first.journals, clock, messages.slice(half, threeQuarters))
    for (const journal of first.journals) {
      journal.onDurable = () => {}
      await journal.close()
    }

    const second = await start('crashed', clock)
    await feed(second.journals, clock, messages.slice(threeQuarters))
    expect(finalState(second.processor)).toEqual(expected)
    await second.processor.stop()
    for (const journal of second.journals) await journal.close()
  }, 120_000)

  it('ignores a record of a slot at or below the position it has applied (a worker replaying)', async () => {
    const clock = { ms: START_S * 1000 }
    const run = await start('repeat', clock)
    await feed(run.journals, clock, messages.slice(0, 500))
    const before = finalState(run.processor)
    expect(before.accepted).toBeGreaterThan(0)
    // A restarted worker forwards what its journal holds after the position it was given; should
    // it send an older record again, the processor must not count it twice.
    for await (const record of run.journals[0]!.replay(0)) run.journals[0]!.onDurable(record)
    expect(finalState(run.processor)).toEqual(before)
    await run.processor.stop()
    for (const journal of run.journals) await journal.close()
  }, 60_000)
})
