import type { PlantModel } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'

/** The built-in plant of `plantwatt up` without `--plant`: a small cell plant of 300 devices. */
export const DEMO_PLANT_DEVICES = 300

export function demoPlant(): PlantModel {
  return generatePlant({ devices: DEMO_PLANT_DEVICES, seed: 42 })
}
