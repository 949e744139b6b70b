// One ground truth from the truths of the workers of a run. Each worker simulates whole lines
// (and the worker with a grid meter the whole site, see partitionFleet), so an equipment can
// appear in two truths; only the worker that sends for it knows the setpoint commands its
// devices received, so its truth is the one kept.

import type { PlantModel } from '@plantwatt/contract'
import { scopeOf } from '@plantwatt/contract'
import type { TruthJson } from '../model/index.ts'

export function mergeTruths(
  plant: PlantModel,
  truths: readonly TruthJson[],
  owned: readonly ReadonlySet<string>[],
): TruthJson {
  const first = truths[0]
  if (!first) throw new RangeError('no truth to merge')
  const ownerOfDevice = (device: string) => owned.findIndex((devices) => devices.has(device))
  const ownerOfScope = new Map<string, number>()
  for (const site of plant.sites) {
    for (const area of site.areas) {
      for (const line of area.lines) {
        for (const equipment of line.equipment) {
          const device = equipment.devices[0]
          if (device !== undefined)
            ownerOfScope.set(scopeOf(site.id, area.id, line.id, equipment.id), ownerOfDevice(device))
        }
      }
    }
  }
  const mine = (part: number) => (item: { scope: string }) => ownerOfScope.get(item.scope) === part
  const myDevice = (part: number) => (item: { device: string }) => ownerOfDevice(item.device) === part
  const merged: TruthJson = {
    ...first,
    untilS: Math.max(...truths.map((truth) => truth.untilS)),
    maxClockErrorS: Math.max(...truths.map((truth) => truth.maxClockErrorS)),
    equipment: truths.flatMap((truth, part) => truth.equipment.filter(mine(part))),
    meters: truths.flatMap((truth, part) => truth.meters.filter(myDevice(part))),
    idleRules: truths.flatMap((truth, part) => truth.idleRules.filter(mine(part))),
    idleEpisodes: truths.flatMap((truth, part) => truth.idleEpisodes.filter(mine(part))),
    feasibleSetpoints: truths.flatMap((truth, part) => truth.feasibleSetpoints.filter(mine(part))),
    counterResets: truths.flatMap((truth, part) => truth.counterResets.filter(myDevice(part))),
    commands: truths.flatMap((truth, part) => truth.commands.filter(myDevice(part))),
  }
  // The order one simulation of the whole plant gives: equipment in model order, idle
  // episodes by scope then start.
  const rank = new Map([...ownerOfScope.keys()].map((scope, k) => [scope, k]))
  const inModelOrder = (a: { scope: string }, b: { scope: string }) => rank.get(a.scope)! - rank.get(b.scope)!
  merged.equipment.sort(inModelOrder)
  merged.idleRules.sort(inModelOrder)
  merged.feasibleSetpoints.sort(inModelOrder)
  merged.idleEpisodes.sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : a.startS - b.startS))
  merged.counterResets.sort((a, b) => a.tS - b.tS)
  merged.commands.sort((a, b) => a.tS - b.tS)
  return merged
}
