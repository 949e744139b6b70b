import type { Alert } from '@plantwatt/contract'
import { AlertBook, EventLog } from '@plantwatt/detection'
import { type EquipmentNode, isWithinScope, PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { TuningLoop } from '../src/tuning-loop.ts'

// The savings of tuned equipment are looked up for every bucket the processor sends, by scope
// (TuningService.addSavings): the tuning loop answers from an index of the scopes that hold tuned
// equipment. It must answer exactly what a scan of every tuned equipment with isWithinScope would.

const plant = new PlantIndex(generatePlant({ devices: 2_000, seed: 3 }))
const loop = new TuningLoop({ plant, alerts: new AlertBook(new EventLog<Alert>(1_000), 600), sendCommand: () => {} })
const tuned = [...plant.scopes.values()]
  .filter((node) => node.level === 'equipment' && (node as EquipmentNode).spec.tuning !== undefined)
  .map((node) => node.scope)

describe('tuning loop: tuned equipment within a scope', () => {
  it('the plant has tuned equipment on several lines (else this test says nothing)', () => {
    const lines = new Set(tuned.map((scope) => plant.scope(scope)!.parent!.scope))
    expect(tuned.length).toBeGreaterThan(10)
    expect(lines.size).toBeGreaterThan(5)
  })

  it('hasTunedWithin answers as a scan would, for every scope of the plant and strings that are not scopes', () => {
    const site = [...plant.sites.keys()][0]!
    const queries = [...plant.scopes.keys(), '', `${site}/`, site.slice(0, -1), `${tuned[0]}/x`, `${tuned[0]}x`]
    let holding = 0
    for (const scope of queries) {
      const scan = tuned.some((equipment) => isWithinScope(equipment, scope))
      expect(loop.hasTunedWithin(scope), scope).toBe(scan)
      if (scan) holding++
    }
    // The site, the areas and lines with tuned equipment, and the tuned equipment themselves.
    expect(holding).toBeGreaterThan(tuned.length)
  })

  it('savedWh sums the saved minutes of exactly the tuned equipment within the scope', () => {
    // Distinct savings per equipment, so that a sum over the wrong set of equipment shows.
    const loops = (loop as unknown as { loops: Map<string, { s: { saved?: Map<number, number> } }> }).loops
    const minute = 29_000_000
    tuned.forEach((scope, i) => {
      loops.get(scope)!.s.saved = new Map([
        [minute, i + 1],
        [minute + 1, 1000 * (i + 1)],
      ])
    })
    for (const scope of plant.scopes.keys()) {
      let expected = 0
      tuned.forEach((equipment, i) => {
        if (isWithinScope(equipment, scope)) expected += i + 1
      })
      // The first minute only: [minute, minute + 1).
      expect(loop.savedWh(scope, minute * 60_000, (minute + 1) * 60_000), scope).toBe(expected)
    }
  })
})
