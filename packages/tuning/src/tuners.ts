// One Tuner per tuned equipment of a plant model (CONTRACT.md §1 `tuning`), by equipment scope,
// with the plant-wide mode switch of `PUT /api/v1/tuning` and the checkpoint of them all.

import type { PlantModel, TuningMode } from '@plantwatt/contract'
import { emptyOutput, Tuner, type TunerState } from './tuner.ts'
import type { TunerOptions, TunerOutput } from './types.ts'

export class Tuners {
  readonly byScope = new Map<string, Tuner>()

  constructor(plant: PlantModel, options: TunerOptions = {}, checkpoint?: Record<string, TunerState>) {
    for (const site of plant.sites)
      for (const area of site.areas)
        for (const line of area.lines)
          for (const eq of line.equipment) {
            if (eq.tuning === undefined) continue
            const scope = `${site.id}/${area.id}/${line.id}/${eq.id}`
            const saved = checkpoint?.[scope]
            this.byScope.set(
              scope,
              saved === undefined
                ? new Tuner(scope, eq.tuning, options)
                : Tuner.fromJSON(scope, eq.tuning, saved, options),
            )
          }
  }

  get(scope: string): Tuner | undefined {
    return this.byScope.get(scope)
  }

  /** Every tuner at once; null gives each its plant model's mode back. */
  setMode(mode: TuningMode | null, tMsOf: (scope: string) => number): TunerOutput {
    const out = emptyOutput()
    for (const [scope, tuner] of this.byScope) {
      const o = tuner.setMode(mode, tMsOf(scope))
      out.commands.push(...o.commands)
      out.events.push(...o.events)
      out.alerts.push(...o.alerts)
      out.saved.push(...o.saved)
    }
    return out
  }

  /** The proposal with this event id, wherever it is. */
  findProposal(eventId: string): Tuner | undefined {
    for (const tuner of this.byScope.values()) if (tuner.proposed?.id === eventId) return tuner
    return undefined
  }

  toJSON(): Record<string, TunerState> {
    const out: Record<string, TunerState> = {}
    for (const [scope, tuner] of this.byScope) out[scope] = tuner.toJSON()
    return out
  }
}
