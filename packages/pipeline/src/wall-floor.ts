// The wall clock's floor of CONTRACT.md §2 and §7 `too_old`, applied at receipt: by the reading
// pipeline, and by a broker worker of `plantwatt up --workers N` on what it received
// (services/processor's uplink-decode.ts). Its own module so that a worker loads only this.

import type { PlantIndex } from '@plantwatt/plant'

/** RFC 8428 §4.5.3: absolute times start at 2^28 s; a resolved time before it is nobody's reading. */
export const EARLIEST_ABSOLUTE_S = 2 ** 28

/** CONTRACT.md §2 and §7 `too_old` at receipt: behind the wall clock by more than maxAgeS, unless --accept-old. */
export function wallFloor(plant: PlantIndex, siteId: string, receivedAt: number, acceptOld: boolean): number {
  return acceptOld ? EARLIEST_ABSOLUTE_S : receivedAt - plant.sites.get(siteId)!.maxAgeS
}
