import { join } from 'node:path'
import type { Bus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import { open } from 'lmdb'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { Processor } from '../src/processor.ts'
import { openBusAndDir } from './support/bus-and-dir.ts'
import { feedUplinks, simulatedUplinks } from './support/simulated-uplinks.ts'

// Issue 13: the retained readings are a log in the processor's state store (each checkpoint writes
// what was inserted since the one before; old chunks are pruned, what they still retain carried
// forward). After many checkpoints, a processor that dies (no stop) with acknowledged readings
// after its last checkpoint restarts with every series of retained readings and detection's state
// exactly as the one that died: the checkpoint's and the journal's replay together. Real LMDB,
// journal and bus; NB-IoT faults (late, repeated, reordered readings).

const model = generatePlant({ devices: 30, seed: 11 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000
const END_S = START_S + 2 * 3600
const logger = pino({ level: 'silent' })

const simulatedMessages = () => simulatedUplinks(model, { seed: 3, startS: START_S, endS: END_S })

const feed = feedUplinks

/** Every retained reading of every series, and detection's whole state (JSON: NaN as null). */
function held(processor: Processor) {
  const p = processor.state.accounting.packSeries()
  return {
    series: {
      device: p.device,
      name: p.name,
      len: [...p.len],
      flags: [...p.flags],
      ever: [...p.ever],
      data: [...p.data],
    },
    detection: JSON.parse(JSON.stringify(processor.state.detection.checkpoint())),
    counters: { ...processor.state.accounting.counters },
  }
}

describe('reading log: restart after many checkpoints', () => {
  let dir: string
  let bus: Bus
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ dir, bus, close } = await openBusAndDir('plantwatt-reading-log-'))
  })

  afterAll(() => close?.())

  async function startProcessor(clock: { ms: number }) {
    const journal = await IngestJournal.open(join(dir, 'journal'), { now: () => clock.ms })
    const processor = new Processor({
      plant,
      bus,
      logger,
      journal,
      checkpointPath: join(dir, 'processor', 'checkpoint.v8'),
      now: () => clock.ms,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    return { journal, processor }
  }

  it('restores every retained reading and detection exactly; old chunks are pruned', async () => {
    const messages = simulatedMessages()
    const clock = { ms: START_S * 1000 }
    const first = await startProcessor(clock)
    // 24 checkpoints over two simulated hours (one each 5 minutes), then acknowledged readings after the last.
    const parts = 25
    const size = Math.ceil(messages.length / parts)
    for (let i = 0; i < parts - 1; i++) {
      await feed(first.journal, clock, messages.slice(i * size, (i + 1) * size))
      await first.processor.checkpoint()
      const last = first.processor.lastCheckpoint!
      // After the first, each checkpoint logs about what one part inserted, not every retained reading.
      if (i > 0) expect(last.readings).toBeLessThan(size * 4)
      expect(last.parts.readings).toBeGreaterThan(0)
    }
    await feed(first.journal, clock, messages.slice((parts - 1) * size))
    const before = held(first.processor)
    expect(before.series.data.length).toBeGreaterThan(1000)
    // Dies here: no stop(), no checkpoint after the last part.
    first.journal.onDurable = () => {}
    await first.journal.close()

    // Pruned: the chunks held span about the retention, not all 24 checkpoints.
    const env = open({ path: join(dir, 'processor', 'state'), maxDbs: 8, readOnly: true })
    // A chunk is written in parts, keyed (generation, part): chunks are the generations held.
    const partsDb = env.openDB<Buffer, [number, number]>({
      name: 'readingParts',
      keyEncoding: 'ordered-binary',
      encoding: 'binary',
    })
    const chunks = [...new Set([...partsDb.getKeys()].map((key) => key[0]))]
    await env.close()
    expect(chunks.length).toBeGreaterThan(0)
    expect(chunks.length).toBeLessThan(12)

    const second = await startProcessor(clock)
    expect(second.processor.state.accounting.restoreMismatches).toBe(0)
    expect(held(second.processor)).toEqual(before)
    await second.processor.stop()
    await second.journal.close()
  }, 180_000)
})
