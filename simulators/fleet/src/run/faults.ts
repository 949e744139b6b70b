import type { FaultOptions } from '../model/index.ts'

/**
 * `--faults` presets. `nbiot` is what a plant's NB-IoT fleet does on a normal day: a share of
 * devices in power-saving mode uploading batches, network latency with jitter, some loss with
 * retransmissions (duplicates), a little reordering, drifting clocks and the odd reboot.
 */
export const FAULT_PRESETS: Readonly<Record<string, FaultOptions>> = {
  none: {},
  nbiot: {
    psm: { share: 0.1, batchIntervalS: 60 },
    latency: { meanMs: 300, jitterMs: 250 },
    loss: { probability: 0.01, retransmitAfterS: 2 },
    reorder: { probability: 0.002 },
    clockDriftPpm: 20,
    counterResets: { perDevicePerDay: 0.05 },
  },
}
