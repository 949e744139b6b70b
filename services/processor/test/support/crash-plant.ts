// Shared by sigkill-checkpoints.test.ts and the child process it kills: the plant, its simulated
// messages (deterministic), how they are fed through the journal, and the state compared.

import { join } from 'node:path'
import type { Bus } from '@plantwatt/bus'
import { deviceTopic } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
import { type OutgoingMessage, PlantSimulation } from '../../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../../simulators/fleet/src/plant-generator.ts'
import { FAULT_PRESETS } from '../../../../simulators/fleet/src/run/faults.ts'
import { Processor } from '../../src/processor.ts'

export const model = generatePlant({ devices: 20, seed: 13 })
export const plant = new PlantIndex(model)
export const START_S = Date.UTC(2025, 2, 3, 8, 0) / 1000

export function simulatedMessages(): OutgoingMessage[] {
  const sim = new PlantSimulation({
    plant: model,
    seed: 4,
    startS: START_S,
    reportIntervalS: 10,
    faults: FAULT_PRESETS.nbiot,
  })
  const out: OutgoingMessage[] = []
  for (let t = START_S + 60; t <= START_S + 3600; t += 60) out.push(...sim.advanceTo(t))
  return out.filter((message) => message.kind === 'up')
}

/** Appends to the journal; resolves once all are durable (acknowledged). */
export function feed(journal: IngestJournal, clock: { ms: number }, messages: OutgoingMessage[]): Promise<void> {
  return Promise.all(
    messages.map(
      (message) =>
        new Promise<void>((resolve, reject) => {
          clock.ms = message.sendAtS * 1000
          journal.append(deviceTopic(message.site, message.deviceId, 'up'), message.payload, (error) =>
            error ? reject(error) : resolve(),
          )
        }),
    ),
  ).then(() => undefined)
}

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
