import { type EquipmentNode, PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { equipmentStateOf } from '../src/tuning-loop.ts'

// The equipment state the tuning loop gives its tuner comes from the equipment's own power only
// (docs/tuning.md "Composition"): by the given idle thresholds, else by fixed shares of the rating.

const plant = new PlantIndex(generatePlant({ devices: 400, seed: 3 }))
const tuned = [...plant.scopes.values()].filter(
  (node): node is EquipmentNode => node.level === 'equipment' && (node as EquipmentNode).spec.tuning !== undefined,
)

describe('equipmentStateOf', () => {
  it('uses the given idle thresholds', () => {
    const given = tuned.find((node) => node.spec.idle !== undefined)!
    const { offBelowW, runAboveW } = given.spec.idle!
    expect(equipmentStateOf(given, offBelowW! - 1)).toBe('off')
    expect(equipmentStateOf(given, runAboveW! - 1)).toBe('idle')
    expect(equipmentStateOf(given, runAboveW!)).toBe('running')
  })

  it('without given thresholds, tells idle apart too: a line stopped with its oven warm is not running', () => {
    const learned = tuned.find((node) => node.spec.idle === undefined)!
    const rated = learned.spec.ratedPowerW
    expect(equipmentStateOf(learned, 0.01 * rated)).toBe('off')
    // An oven whose web stopped still draws its heaters' standby, a fifth of its rating.
    expect(equipmentStateOf(learned, 0.2 * rated)).toBe('idle')
    expect(equipmentStateOf(learned, 0.6 * rated)).toBe('running')
  })
})
