import { join } from 'node:path'
import type { Bus } from '@plantwatt/bus'
import { deviceTopic } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type OutgoingMessage, PlantSimulation } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { registerProcessorMetrics } from '../src/metrics.ts'
import { Processor } from '../src/processor.ts'
import { openBusAndDir } from './support/bus-and-dir.ts'

// Issue 13: the checkpoint's wall time, its bytes by part and its failures are on /metrics with the
// processor's other metrics (read from the processor at scrape time). Real LMDB state store.

const model = generatePlant({ devices: 12, seed: 2 })
const plant = new PlantIndex(model)
const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000

/** A metric's value from the exposition text, by its name and labels as written there. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('checkpoint metrics', () => {
  let dir: string
  let bus: Bus
  let close: (() => Promise<void>) | undefined

  beforeAll(async () => {
    ;({ dir, bus, close } = await openBusAndDir('plantwatt-checkpoint-metrics-'))
  })

  afterAll(() => close?.())

  it('exposes duration, bytes by part and failures', async () => {
    const clock = { ms: START_S * 1000 }
    const processor = new Processor({
      plant,
      bus,
      logger: pino({ level: 'silent' }),
      checkpointPath: join(dir, 'processor', 'checkpoint.v8'),
      now: () => clock.ms,
      checkpointIntervalMs: 3_600_000,
    })
    await processor.start()
    const registry = new Registry()
    registerProcessorMetrics(registry, processor)
    const sim = new PlantSimulation({ plant: model, seed: 1, startS: START_S })
    for (let m = 1; m <= 2; m++) {
      for (const message of sim.advanceTo(START_S + 60 * m) as OutgoingMessage[]) {
        if (message.kind !== 'up') continue
        clock.ms = message.sendAtS * 1000
        processor.state.ingest(deviceTopic(message.site, message.deviceId, 'up'), message.payload, clock.ms)
      }
      await processor.checkpoint()
    }
    let text = await registry.metrics()
    expect(value(text, 'plantwatt_checkpoint_duration_seconds_count')).toBe(2)
    expect(value(text, 'plantwatt_checkpoint_duration_seconds_sum')).toBeGreaterThan(0)
    const last = processor.lastCheckpoint!
    for (const part of ['columns', 'readings', 'detection', 'blob', 'devices', 'series'] as const) {
      expect(value(text, `plantwatt_checkpoint_bytes{part="${part}"}`)).toBe(last.parts[part])
    }
    expect(last.parts.readings).toBeGreaterThan(0)
    expect(last.parts.detection).toBeGreaterThan(0)
    expect(last.parts.blob).toBeGreaterThan(0)
    expect(last.parts.devices).toBeGreaterThan(0)
    expect(last.parts.series).toBeGreaterThan(0)
    for (const kind of ['max', 'snapshot', 'slice', 'store'] as const) {
      expect(value(text, `plantwatt_checkpoint_held_seconds{kind="${kind}"}`)).toBeCloseTo(last.heldMs[kind] / 1000, 9)
    }
    expect(last.heldMs.snapshot).toBeGreaterThan(0)
    expect(last.heldMs.max).toBeGreaterThanOrEqual(last.heldMs.snapshot)
    expect(value(text, 'plantwatt_checkpoint_failures_total')).toBe(0)

    // A write that fails (the store closed under it) is counted, and nothing is observed for it.
    await (processor as unknown as { stateStore: { close(): Promise<void> } }).stateStore.close()
    await processor.checkpoint()
    text = await registry.metrics()
    expect(value(text, 'plantwatt_checkpoint_failures_total')).toBe(1)
    expect(value(text, 'plantwatt_checkpoint_duration_seconds_count')).toBe(2)
    await processor.stop()
  }, 60_000)
})
