import type { PlantModel } from '@plantwatt/contract'
import type { FleetDevice } from './types.ts'

/** Every device of a plant model with its site, site meters first, in model order. */
export function fleetDevicesOf(plant: PlantModel): FleetDevice[] {
  const devices: FleetDevice[] = []
  for (const site of plant.sites) {
    for (const id of site.meters?.pv ?? []) devices.push({ id, site: site.id })
    for (const id of site.meters?.grid ?? []) devices.push({ id, site: site.id })
    for (const area of site.areas) {
      for (const line of area.lines) {
        for (const equipment of line.equipment) for (const id of equipment.devices) devices.push({ id, site: site.id })
      }
    }
  }
  return devices
}
