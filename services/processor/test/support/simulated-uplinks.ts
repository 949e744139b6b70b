// Simulated devices' uplinks fed through an ingest journal as the broker would: shared by the
// processor's restart-style tests (restart, state-store-restore, journal-slots, reading-log-restart,
// and the SIGKILL child of sigkill-checkpoints).

import { deviceTopic, type PlantModel } from '@plantwatt/contract'
import type { IngestJournal } from '@plantwatt/runtime'
import { type OutgoingMessage, PlantSimulation } from '../../../../simulators/fleet/src/model/index.ts'
import { FAULT_PRESETS } from '../../../../simulators/fleet/src/run/faults.ts'

/** The `up` messages of the plant's devices from startS to endS (10 s readings, NB-IoT faults), advanced minute by minute. */
export function simulatedUplinks(
  model: PlantModel,
  options: { seed: number; startS: number; endS: number },
): OutgoingMessage[] {
  const sim = new PlantSimulation({
    plant: model,
    seed: options.seed,
    startS: options.startS,
    reportIntervalS: 10,
    faults: FAULT_PRESETS.nbiot,
  })
  const out: OutgoingMessage[] = []
  for (let t = options.startS + 60; t <= options.endS; t += 60) out.push(...sim.advanceTo(t))
  return out.filter((message) => message.kind === 'up')
}

/** Appends each message at its send time (the journal's clock); resolves once all are durable (acknowledged). */
export function feedUplinks(journal: IngestJournal, clock: { ms: number }, messages: OutgoingMessage[]): Promise<void> {
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
