import type { PlantModel } from '@plantwatt/contract'

function lineSize(line: PlantModel['sites'][number]['areas'][number]['lines'][number]): number {
  return line.equipment.reduce((count, equipment) => count + equipment.devices.length, 0)
}

/**
 * The plant cut down to about `devices` devices for `simulate --devices N`: its site meters and
 * whole lines in model order until N is reached (a line is the unit the simulation couples, so
 * it is never cut), sites and areas left without lines dropped. At least one line is kept.
 */
export function plantSubset(plant: PlantModel, devices: number): PlantModel {
  let count = 0
  const sites: PlantModel['sites'] = []
  for (const site of plant.sites) {
    if (count >= devices && sites.length > 0) break
    count += (site.meters?.pv?.length ?? 0) + (site.meters?.grid?.length ?? 0)
    const areas: PlantModel['sites'][number]['areas'] = []
    for (const area of site.areas) {
      const lines = []
      for (const line of area.lines) {
        if (count >= devices && (lines.length > 0 || areas.length > 0 || sites.length > 0)) break
        lines.push(line)
        count += lineSize(line)
      }
      if (lines.length > 0) areas.push({ ...area, lines })
    }
    sites.push({ ...site, areas })
  }
  return { ...plant, sites }
}
