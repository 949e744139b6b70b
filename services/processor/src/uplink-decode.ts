import { type DecodedPack, decodeSenml, parseDeviceTopic } from '@plantwatt/contract'
import { wallFloor } from '@plantwatt/pipeline/wall-floor'
import type { PlantIndex } from '@plantwatt/plant'

// The per-reading part of an uplink's processing that needs no site state (issue 16): the SenML
// decode and the validation of CONTRACT.md §2 against the wall clock at receipt. A broker worker
// of `plantwatt up --workers N` runs it on what it received; the site's owner (the primary's
// reading pipeline, `ingestDecoded`) does the rest: the site clock's `too_old` floor (the last
// check of the decode, so applying it afterwards changes nothing), the ranges, names, duplicates.
// Light on purpose: a worker loads this, not the processor (and of @plantwatt/pipeline, only its
// wall-floor.ts).

export { EARLIEST_ABSOLUTE_S, wallFloor } from '@plantwatt/pipeline/wall-floor'

/**
 * The decoded pack of a known device's `up` message received at `receivedAtMs`, validated with the
 * wall clock's floor only (`notBefore`: receipt − the site's maxAgeS, unless acceptOld); undefined
 * for any other topic, which goes to the owner as it came (it counts those).
 */
export function decodeUplink(
  plant: PlantIndex,
  topic: string,
  payload: Uint8Array,
  receivedAtMs: number,
  acceptOld: boolean,
): DecodedPack | undefined {
  const parsed = parseDeviceTopic(topic)
  if (parsed?.kind !== 'up') return undefined
  const device = plant.device(parsed.deviceId)
  if (!device || device.siteId !== parsed.site) return undefined
  const receivedAt = receivedAtMs / 1000
  return decodeSenml(payload, { receivedAt, notBefore: wallFloor(plant, device.siteId, receivedAt, acceptOld) })
}
