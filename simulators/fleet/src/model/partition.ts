// Splitting the fleet over worker processes so that each worker's PlantSimulation (emitDevices)
// gives the same bytes as one simulation of the whole plant: a line is the unit of coupling, and a
// setpoint command changes the physics that every device of its equipment reports, so devices of
// one line must stay in one worker. Site meters go with the first part (a grid meter makes its
// worker simulate the whole site: give that worker fewer devices if it matters).

import type { PlantModel } from '@plantwatt/contract'

/** Device ids in `parts` groups of whole lines, balanced by device count; deterministic. */
export function partitionFleet(plant: PlantModel, parts: number): Set<string>[] {
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`parts must be a positive integer, got ${parts}`)
  const out = Array.from({ length: parts }, () => new Set<string>())
  const groups: string[][] = []
  for (const site of plant.sites) {
    for (const id of [...(site.meters?.pv ?? []), ...(site.meters?.grid ?? [])]) out[0]!.add(id)
    for (const area of site.areas) {
      for (const line of area.lines) groups.push(line.equipment.flatMap((eq) => eq.devices))
    }
  }
  // Largest lines first, each to the part with the fewest devices so far (ties: lowest index).
  const order = groups.map((ids, i) => ({ ids, i })).sort((a, b) => b.ids.length - a.ids.length || a.i - b.i)
  for (const { ids } of order) {
    let best = 0
    for (let p = 1; p < parts; p++) if (out[p]!.size < out[best]!.size) best = p
    for (const id of ids) out[best]!.add(id)
  }
  return out
}
