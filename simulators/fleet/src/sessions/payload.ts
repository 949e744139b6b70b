import { encodeSenmlJson } from '@plantwatt/contract'
import type { FleetDevice } from './types.ts'

/**
 * Builds the payload of one device's next uplink. `seq` counts this session's publishes from 0;
 * `nowMs` is the wall clock in epoch ms. Called once per publish, so it must be cheap.
 */
export type PayloadFactory = (device: FleetDevice, seq: number, nowMs: number) => Buffer

/** A small stable number per device, so devices differ without per-device state. */
function deviceSalt(id: string): number {
  let hash = 2166136261
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619)
  return hash >>> 0
}

/**
 * The load-test pack of CONTRACT.md §2: power, the energy and output counters and one process
 * variable. The values are plausible but not physics (the plant simulator does that): the
 * benchmark needs the size and shape of a real pack, and counters that never decrease.
 */
export const fourRecordPack: PayloadFactory = (device, seq, nowMs) => {
  const baseW = 500 + (deviceSalt(device.id) % 5000)
  return encodeSenmlJson([
    { bn: `urn:dev:imei:${device.id}:`, bt: nowMs / 1000, n: 'power', u: 'W', v: baseW + (seq % 10) * 3 },
    { n: 'energy', u: 'Wh', s: Math.round((seq * baseW) / 360) / 10 },
    { n: 'output', u: 'count', s: seq },
    { n: 'temperature', u: 'Cel', v: 20 + (seq % 50) / 10 },
  ])
}
