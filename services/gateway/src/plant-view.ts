import type { EquipmentLive } from '@plantwatt/bus'
import type { EquipmentNode, PlantIndex, ScopeNode } from '@plantwatt/plant'
import type { TokenRecord } from '@plantwatt/runtime'
import { mayViewNode } from './access.ts'

// GET /api/v1/plant (CONTRACT.md §6): the tree with each equipment's live state.

export interface PlantViewNode {
  id: string
  scope: string
  name: string
  level: ScopeNode['level']
  /** Sites only: the IANA time zone their local day and hours are in. */
  timezone?: string
  /** Absent below the depth asked for. */
  children?: PlantViewNode[]
  equipment?: EquipmentView
}

export interface EquipmentView {
  type: string
  ratedPowerW: number
  devices: string[]
  state: EquipmentLive['state']
  powerW: number | null
  /** Thresholds in force, and whether the plant model gave them or they were learned. */
  idle:
    | { offBelowW: number; runAboveW: number; afterS: number; source: 'model' }
    | {
        offBelowW: number | null
        runAboveW: number | null
        afterS: number | null
        source: 'learned'
        levelsW?: number[]
      }
    | { source: 'learning' }
  tuning: { setpoint: string; mode: string; status: string; current?: number | null } | null
}

/** The model's thresholds, or those the processor learned from the equipment's own power (§7). */
function idleView(given: EquipmentNode['spec']['idle'], inForce: EquipmentLive['thresholds']): EquipmentView['idle'] {
  if (given) return { ...given, source: 'model' }
  if (inForce?.origin === 'learned') {
    const { offBelowW, runAboveW, afterS, levelsW } = inForce
    return { offBelowW, runAboveW, afterS, source: 'learned', ...(levelsW ? { levelsW } : {}) }
  }
  return { source: 'learning' }
}

const LEVELS: ScopeNode['level'][] = ['site', 'area', 'line', 'equipment']

/**
 * The tree down to `depth` (default: equipment). A dashboard of a 40,000-device plant asks for
 * `line`: its areas and lines without the megabytes of equipment.
 */
export function plantView(
  plant: PlantIndex,
  principal: TokenRecord,
  live: (scope: string) => EquipmentLive | undefined,
  depth: ScopeNode['level'] = 'equipment',
): { sites: PlantViewNode[] } {
  const deepest = LEVELS.indexOf(depth)
  const view = (node: ScopeNode): PlantViewNode => {
    const result: PlantViewNode = { id: node.id, scope: node.scope, name: node.name, level: node.level }
    if (node.level === 'site') result.timezone = plant.sites.get(node.id)!.spec.timezone
    if (node.level === 'equipment') {
      const { spec } = node as EquipmentNode
      const current = live(node.scope)
      result.equipment = {
        type: spec.type,
        ratedPowerW: spec.ratedPowerW,
        devices: spec.devices,
        state: current?.state ?? 'unknown',
        powerW: current?.powerW ?? null,
        idle: idleView(spec.idle, current?.thresholds),
        // As the processor's tuner stands (issue 15); 'waiting' until it has sent one.
        tuning: spec.tuning
          ? current?.tuning
            ? { setpoint: spec.tuning.setpoint, ...current.tuning }
            : { setpoint: spec.tuning.setpoint, mode: spec.tuning.mode, status: 'waiting' }
          : null,
      }
    } else if (LEVELS.indexOf(node.level) < deepest) {
      result.children = node.children.filter((child) => mayViewNode(principal, child.scope)).map(view)
    }
    return result
  }
  const sites = [...plant.sites.values()].map((site) => site.node).filter((node) => mayViewNode(principal, node.scope))
  return { sites: sites.map(view) }
}
