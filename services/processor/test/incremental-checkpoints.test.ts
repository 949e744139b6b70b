import { join } from 'node:path'
import { deserialize, serialize } from 'node:v8'
import type { Bus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { Processor } from '../src/processor.ts'
import { openBusAndDir } from './support/bus-and-dir.ts'
import { feedUplinks, simulatedUplinks } from './support/simulated-uplinks.ts'

// Issue 13 "checkpoints that grow with what changed": the output-minutes ring is written as the
// columns of the minutes that changed since the previous checkpoint (not whole), and detection's
// per-equipment state is captured over several turns of the event loop, each equipment as it stood
// at the snapshot's journal position (copied before a reading arriving meanwhile changes it). A
// processor that dies after several such checkpoints, with acknowledged readings applied during
// them and after the last, restarts with exactly the output minutes, accounting and detection
// state of the one that died. Real LMDB, journal and bus; NB-IoT faults.

const model = generatePlant({ devices: 30, seed: 5 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000
const END_S = START_S + 40 * 60
const logger = pino({ level: 'silent' })

/** Accounting's whole state (the ring, the output minutes, every series) and detection's. */
function held(processor: Processor) {
  const accounting = deserialize(processor.state.accounting.checkpoint()) as {
    state: { output?: unknown; sites: unknown; devices: unknown; counters: unknown }
  }
  return {
    output: accounting.state.output,
    accounting: accounting.state,
    detection: JSON.parse(JSON.stringify(processor.state.detection.checkpoint())),
  }
}

describe('incremental checkpoints: output minutes and detection', () => {
  let dir: string
  let bus: Bus
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ dir, bus, close } = await openBusAndDir('plantwatt-incremental-ckpt-'))
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
      // One equipment per turn: readings applied between the turns of every checkpoint.
      checkpointSliceMs: 0,
      // Closed minutes go out only at checkpoints: a publish on the timer after the last one would
      // make the dead processor's emitted minutes depend on how long the test ran (the restarted
      // one is compared before its timer runs).
      publishIntervalMs: 3_600_000,
    })
    await processor.start()
    return { journal, processor }
  }

  it('writes only changed output minutes, slices detection, and restores both exactly', async () => {
    const messages = simulatedUplinks(model, { seed: 7, startS: START_S, endS: END_S })
    expect(messages.some((m) => new TextDecoder().decode(m.payload).includes('"output"'))).toBe(true)
    const clock = { ms: START_S * 1000 }
    const first = await startProcessor(clock)
    const parts = 8
    const size = Math.ceil(messages.length / parts)
    for (let i = 0; i < parts - 1; i++) {
      const slice = messages.slice(i * size, (i + 1) * size)
      // Half the part before the checkpoint, half fed (and applied) while it is being written.
      const half = Math.floor(slice.length / 2)
      await feedUplinks(first.journal, clock, slice.slice(0, half))
      const writing = first.processor.checkpoint()
      await Promise.all([writing, feedUplinks(first.journal, clock, slice.slice(half))])
      const last = first.processor.lastCheckpoint!
      expect(first.processor.checkpointFailures).toBe(0)
      expect(last.parts.output).toBeGreaterThan(0)
      // Detection was captured over several turns of the event loop.
      expect(last.slices).toBeGreaterThan(1)
      // The minutes a part changed (a few of the ring's 1,516), not the whole ring as before.
      const wholeRing = serialize(held(first.processor).output).byteLength
      expect(last.parts.output).toBeLessThan(wholeRing / 20)
    }
    await feedUplinks(first.journal, clock, messages.slice((parts - 1) * size))
    const before = held(first.processor)
    expect(before.output).toBeDefined()
    // Dies here: no stop(), no checkpoint after the last part.
    first.journal.onDurable = () => {}
    await first.journal.close()

    const second = await startProcessor(clock)
    expect(held(second.processor)).toEqual(before)
    await second.processor.stop()
    await second.journal.close()
  }, 180_000)
})
