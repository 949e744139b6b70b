import { join } from 'node:path'
import { deserialize } from 'node:v8'
import type { Bus } from '@plantwatt/bus'
import { deviceTopic } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { open } from 'lmdb'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { encodeState } from '../src/checkpoint-file.ts'
import { Processor } from '../src/processor.ts'
import { ProcessorStateStore } from '../src/state-store.ts'
import { openBusAndDir } from './support/bus-and-dir.ts'
import { simulatedUplinks } from './support/simulated-uplinks.ts'

// Issue 13 (ckpt4): the reading log's chunks are now written in parts, keyed (generation, part), and
// the series' state beside the blob. A state store written before (one chunk per generation in
// `readings`, the series' state inside the blob) still restores exactly, and the processor carries
// on from it in the new layout. Real LMDB and bus.

const model = generatePlant({ devices: 30, seed: 5 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000
const END_S = START_S + 20 * 60
const logger = pino({ level: 'silent' })

/** Accounting's whole state (every series included) and detection's. */
function held(processor: Processor) {
  return {
    accounting: deserialize(processor.state.accounting.checkpoint()),
    detection: JSON.parse(JSON.stringify(processor.state.detection.checkpoint())),
  }
}

describe('processor state store: layouts written before reading log parts', () => {
  let dir: string
  let bus: Bus
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ dir, bus, close } = await openBusAndDir('plantwatt-state-layouts-'))
  })

  afterAll(() => close?.())

  const processorOf = (clock: { ms: number }, checkpointPath?: string) =>
    new Processor({ plant, bus, logger, now: () => clock.ms, checkpointPath, checkpointIntervalMs: 3_600_000 })

  it('restores a state whose readings are one chunk per generation and whose series state is in the blob', async () => {
    const clock = { ms: START_S * 1000 }
    const first = processorOf(clock)
    await first.start()
    for (const message of simulatedUplinks(model, { seed: 3, startS: START_S, endS: END_S })) {
      clock.ms = message.sendAtS * 1000
      first.state.ingest(deviceTopic(message.site, message.deviceId, 'up'), message.payload, clock.ms)
    }
    // The older layout, as the processor wrote it before parts: the synchronous snapshot's state
    // (series' state inside), and its chunk as one value under its generation in `readings`.
    // What the processor's checkpoint does first: the closed buckets and alert events taken.
    first.state.takeBucketEvents()
    first.state.takeAlertEvents()
    const snapshot = first.state.snapshot(true)
    const before = held(first)
    expect(snapshot.state.accounting.devices).not.toBeNull()
    expect(snapshot.readings.parts).toHaveLength(1)
    const path = join(dir, 'processor', 'state')
    const store = new ProcessorStateStore(path)
    const { blob, arrays } = encodeState({ journalSeq: 0, savedAt: clock.ms, pipeline: snapshot.state })
    await store.write({ state: blob, arrays, columns: snapshot.columns, outputColumns: snapshot.outputColumns })
    await store.close()
    const env = open({ path, maxDbs: 8 })
    await env
      .openDB<Buffer, number>({ name: 'readings', keyEncoding: 'ordered-binary', encoding: 'binary' })
      .put(snapshot.readings.gen, snapshot.readings.parts[0] as Buffer)
    await env.close()
    await first.stop()

    const second = processorOf(clock, join(dir, 'processor', 'checkpoint.v8'))
    await second.start()
    expect(second.state.accounting.restoreMismatches).toBe(0)
    expect(held(second)).toEqual(before)
    // Carries on in the new layout: a checkpoint, then a third processor restores the same.
    await second.checkpoint()
    expect(second.checkpointFailures).toBe(0)
    await second.stop()
    const third = processorOf(clock, join(dir, 'processor', 'checkpoint.v8'))
    await third.start()
    expect(third.state.accounting.restoreMismatches).toBe(0)
    expect(held(third)).toEqual(before)
    await third.stop()
  }, 120_000)
})
