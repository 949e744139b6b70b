import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// The simulator is reached by path, as the repository's other cross-workspace tests do: a
// service may not depend on it.
import type { OutgoingMessage } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { Processor } from '../src/processor.ts'
import { feedUplinks, simulatedUplinks } from './support/simulated-uplinks.ts'

// A processor that crashes between checkpoints carries on from its checkpoint and the ingest
// journal without losing or double counting a reading: its final buckets, alerts and counters
// equal those of a processor that never stopped. Real files, a real in-process bus.

const model = generatePlant({ devices: 40, seed: 3 })
const plant = new PlantIndex(model)
// 21:00 in Yibin: a shift change, machines left idle.
const START_S = Date.UTC(2025, 2, 3, 13, 0) / 1000
const END_S = START_S + 90 * 60
const logger = pino({ level: 'silent' })

const simulatedMessages = () => simulatedUplinks(model, { seed: 8, startS: START_S, endS: END_S })

/** Appends messages as the broker would, each received at its send time; resolves once all are durable. */
const feed = feedUplinks

/** Everything a restart must not change: every scope's 1-minute history, the alert log, the counts. */
function finalState(processor: Processor) {
  const { accounting, detection, stats } = processor.state
  const history = [...plant.scopes.keys()].map((scope) => [
    scope,
    accounting.history(scope, '1m', START_S * 1000, (END_S + 3600) * 1000),
  ])
  return { history, alerts: detection.alertsSince(0), stats }
}

describe('processor restart from its checkpoint and the ingest journal', () => {
  let dir: string
  let aedes: Aedes
  let bus: Bus
  let messages: OutgoingMessage[]

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-restart-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
    messages = simulatedMessages()
  })

  afterAll(async () => {
    await bus?.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  async function startProcessor(name: string, clock: { ms: number }) {
    const journal = await IngestJournal.open(join(dir, name, 'journal'), { now: () => clock.ms })
    const processor = new Processor({
      plant,
      bus,
      logger,
      journal,
      checkpointPath: join(dir, name, 'checkpoint.v8'),
      now: () => clock.ms,
      // Checkpoints only when the test says so.
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    return { journal, processor }
  }

  it('ends with the same buckets, alerts and counts as a run without a crash', async () => {
    const clock = { ms: START_S * 1000 }
    const whole = await startProcessor('whole', clock)
    await feed(whole.journal, clock, messages)
    const expected = finalState(whole.processor)
    expect(expected.stats.readingsAccepted).toBeGreaterThan(10_000)
    expect(expected.stats.readingsDuplicate).toBeGreaterThan(0)
    expect(expected.alerts.events.some(({ event }) => event.kind === 'idle')).toBe(true)
    await whole.processor.stop()
    await whole.journal.close()

    const half = Math.floor(messages.length / 2)
    const threeQuarters = Math.floor((messages.length * 3) / 4)
    const first = await startProcessor('crashed', clock)
    await feed(first.journal, clock, messages.slice(0, half))
    await first.processor.checkpoint()
    // Acknowledged to the devices, not in any checkpoint: then the process dies (no stop()).
    await feed(first.journal, clock, messages.slice(half, threeQuarters))
    first.journal.onDurable = () => {}
    await first.journal.close()

    const second = await startProcessor('crashed', clock)
    expect(second.processor.stats.readingsAccepted).toBeGreaterThan(0)
    await feed(second.journal, clock, messages.slice(threeQuarters))
    expect(finalState(second.processor)).toEqual(expected)
    await second.processor.stop()
    await second.journal.close()
  }, 120_000)

  it('after a clean stop, starts again from the checkpoint alone', async () => {
    const clock = { ms: START_S * 1000 }
    const first = await startProcessor('clean', clock)
    await feed(first.journal, clock, messages.slice(0, 2000))
    await first.processor.stop()
    const before = finalState(first.processor)
    await first.journal.close()

    const second = await startProcessor('clean', clock)
    expect(finalState(second.processor)).toEqual(before)
    await second.processor.stop()
    await second.journal.close()
  }, 60_000)
})
