// The bound on a device's process-variable names (CONTRACT.md §2 v1.1, issue 12 finding 4). Every
// distinct measurement name costs a series in accounting (ordering and dedup), an entry in the
// device's newest readings and room in the checkpoint; without a bound one device sending packs of
// new names grows the processor, its checkpoint and GET /api/v1/devices/{id} for ever.
//
// Stated bounds per device: at most `maxProcessNames` (default 16) counted names; plus `power`,
// `energy`, `output` and its equipment's tuning setpoint and constraint measure, which are always
// accepted and do not count. So a device holds at most 16 + 5 series and newest readings.

import type { EquipmentNode } from '@plantwatt/plant'

export const DEFAULT_MAX_PROCESS_NAMES = 16

const ALWAYS_ACCEPTED = new Set(['power', 'energy', 'output'])

/** True for a name that counts against the bound: a process variable the plant model does not name. */
export function isCountedName(name: string, equipment: EquipmentNode | undefined): boolean {
  if (ALWAYS_ACCEPTED.has(name)) return false
  const tuning = equipment?.spec.tuning
  return !(tuning !== undefined && (tuning.setpoint === name || tuning.constraint?.measure === name))
}

/**
 * Names to forget so that at most `limit` remain: those unseen (latest reading time) before
 * `staleBefore`, then, if still too many, the least recently seen.
 */
export function namesToForget(names: ReadonlyMap<string, number>, limit: number, staleBefore: number): string[] {
  const out: string[] = []
  for (const [name, seen] of names) if (seen < staleBefore) out.push(name)
  const left = names.size - out.length
  if (left > limit) {
    const kept = [...names].filter(([, seen]) => seen >= staleBefore).sort((a, b) => a[1] - b[1])
    for (let k = 0; k < left - limit; k++) out.push(kept[k]![0])
  }
  return out
}
