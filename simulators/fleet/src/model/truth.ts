// Ground truth: what really happened in the simulated plant, to score the processor against.
//
// - Energy per equipment per UTC minute (Wh), exact integrals of the true power from each
//   equipment's first sample to its latest one; the published energy counters integrate the same
//   power, so counter differences equal these figures (up to the 0.01 Wh counter resolution).
// - Idle episodes by CONTRACT.md §7 (idle.ts) on the true values at the sample instants, for
//   production equipment and any equipment with `idle` thresholds; equipment without thresholds in
//   the model is judged with offBelowW = 2 % and runAboveW = 30 % of rated power and afterS = 300
//   (`idleRules` says which). The physics keeps every level clearly on one side of those, so
//   thresholds a processor learns from the power history find the same episodes.
// - For each tuned equipment the least feasible setpoint over time (a step series; the range's
//   minimum while the web is stopped, when any setpoint keeps the constraint).
// - Site meters: PV generation and grid import per minute; every counter reset; the largest device
//   clock error.
// Times are true simulated time. With clock drift on, devices stamp readings up to `maxClockErrorS`
// off, so compare episode boundaries with that tolerance (see device.ts).
//
// A simulation restricted to `emitDevices` holds the truth of the equipment with at least one
// emitted device; an equipment whose devices are split over several simulations appears in each,
// identically.

import type { IdleEpisode, IdleRule } from './idle.ts'

export interface FeasibleSetpoints {
  scope: string
  /** The setpoint name (`fan_hz`). */
  name: string
  points: { tS: number; value: number }[]
}

export interface IdleRuleInfo extends IdleRule {
  scope: string
  /** `model`: thresholds from the plant model; `simulator`: implicit ones (see above). */
  source: 'model' | 'simulator'
}

export interface CounterReset {
  device: string
  tS: number
  energy: boolean
  output: boolean
}

export interface CommandRecord {
  device: string
  tS: number
  id: string
  value: number
  status: 'applied' | 'rejected'
}

export interface GroundTruth {
  /** True energy (Wh) per 1-minute UTC bucket of an equipment simulated here; throws for others. */
  energyByMinute(equipmentScope: string): { startMs: number; wh: Float64Array }
  /** Idle episodes of CONTRACT.md §7 from the true power and output, by scope then start. */
  idleEpisodes(): IdleEpisode[]
  /** Least feasible setpoint of each tuned equipment over time (step series). */
  feasibleSetpoints(): FeasibleSetpoints[]
  toJSON(): TruthJson
  /** Scopes of the equipment this truth covers. */
  equipmentScopes(): string[]
  /** Total true energy of an equipment from its first sample to its latest one (Wh). */
  energyTotalWh(equipmentScope: string): number
  /** PV generation or grid import (Wh) per minute of a site meter emitted here. */
  meterEnergyByMinute(deviceId: string): { startMs: number; wh: Float64Array }
  idleRules(): IdleRuleInfo[]
  counterResets(): CounterReset[]
  commands(): CommandRecord[]
  /** Largest |device clock − true time| seen so far, seconds (0 without drift). */
  maxClockErrorS(): number
}

export interface TruthJson {
  format: 'plantwatt-truth'
  version: 1
  seed: number
  startS: number
  reportIntervalS: number
  /** Latest sample time simulated (s). */
  untilS: number
  minuteStartMs: number
  equipment: { scope: string; totalWh: number; wh: number[] }[]
  meters: { device: string; site: string; kind: 'pv' | 'grid'; wh: number[] }[]
  idleRules: IdleRuleInfo[]
  idleEpisodes: IdleEpisode[]
  feasibleSetpoints: { scope: string; name: string; points: [number, number][] }[]
  counterResets: CounterReset[]
  commands: CommandRecord[]
  maxClockErrorS: number
}

const round = (x: number, digits: number) => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export function minutesToJson(wh: Float64Array): number[] {
  return Array.from(wh, (x) => round(x, 4))
}

/** A GroundTruth read back from its toJSON() form (a `--truth FILE`), for scoring tools. */
export function truthFromJson(json: unknown): GroundTruth {
  const t = json as TruthJson
  if (t === null || typeof t !== 'object' || t.format !== 'plantwatt-truth' || t.version !== 1) {
    throw new TypeError('not a plantwatt truth file (format plantwatt-truth, version 1)')
  }
  const equipment = new Map(t.equipment.map((e) => [e.scope, e]))
  const meters = new Map(t.meters.map((m) => [m.device, m]))
  const find = <T>(map: Map<string, T>, key: string, what: string): T => {
    const found = map.get(key)
    if (found === undefined) throw new RangeError(`${what} ${key} is not in this truth`)
    return found
  }
  return {
    energyByMinute: (scope) => ({
      startMs: t.minuteStartMs,
      wh: Float64Array.from(find(equipment, scope, 'equipment').wh),
    }),
    idleEpisodes: () => t.idleEpisodes.map((e) => ({ ...e })),
    feasibleSetpoints: () =>
      t.feasibleSetpoints.map((f) => ({
        scope: f.scope,
        name: f.name,
        points: f.points.map(([tS, value]) => ({ tS, value })),
      })),
    toJSON: () => t,
    equipmentScopes: () => t.equipment.map((e) => e.scope),
    energyTotalWh: (scope) => find(equipment, scope, 'equipment').totalWh,
    meterEnergyByMinute: (device) => ({
      startMs: t.minuteStartMs,
      wh: Float64Array.from(find(meters, device, 'meter').wh),
    }),
    idleRules: () => t.idleRules.map((r) => ({ ...r })),
    counterResets: () => t.counterResets.map((r) => ({ ...r })),
    commands: () => t.commands.map((c) => ({ ...c })),
    maxClockErrorS: () => t.maxClockErrorS,
  }
}
