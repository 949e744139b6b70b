// Shared by sigkill-checkpoints.test.ts and the child process it kills: the plant, its simulated
// messages (deterministic), how they are fed through the journal, and the state compared.

import { join } from 'node:path'
import type { Bus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { generatePlant } from '../../../../simulators/fleet/src/plant-generator.ts'
import { Processor } from '../../src/processor.ts'
import { feedUplinks, simulatedUplinks } from './simulated-uplinks.ts'

export const model = generatePlant({ devices: 20, seed: 13 })
export const plant = new PlantIndex(model)
export const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000

export const simulatedMessages = () => simulatedUplinks(model, { seed: 4, startS: START_S, endS: START_S + 3600 })

/** Appends to the journal; resolves once all are durable (acknowledged). */
export const feed = feedUplinks

export async function startProcessor(dir: string, bus: Bus, clock: { ms: number }) {
  const journal = await IngestJournal.open(join(dir, 'journal'), { now: () => clock.ms })
  const processor = new Processor({
    plant,
    bus,
    logger: pino({ level: 'silent' }),
    journal,
    checkpointPath: join(dir, 'processor', 'checkpoint.v8'),
    now: () => clock.ms,
    checkpointIntervalMs: 3_600_000,
  })
  await processor.start()
  return { journal, processor }
}

/** Every retained reading, detection's whole state, the counters and every 1-minute bucket. */
export function held(processor: Processor) {
  const p = processor.state.accounting.packSeries()
  const { accounting } = processor.state
  const detection = JSON.parse(JSON.stringify(processor.state.detection.checkpoint()))
  // Alert events not yet published: a started processor publishes what its replay raised at once.
  detection.alerts.pending = []
  return {
    series: {
      device: p.device,
      name: p.name,
      len: [...p.len],
      flags: [...p.flags],
      ever: [...p.ever],
      data: [...p.data],
    },
    detection,
    counters: { ...accounting.counters },
    buckets: [...plant.scopes.keys()].map((scope) => accounting.history(scope, '1m', 0, Number.MAX_SAFE_INTEGER)),
  }
}
