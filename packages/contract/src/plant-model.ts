// The plant model of CONTRACT.md §1: the shapes as TypeScript types.
// The schema and validation that refuse a bad file live in validate-plant.ts.

export interface PlantModel {
  /** Where editors find the JSON Schema (`plantwatt plant schema`); ignored by plantwatt. */
  $schema?: string
  version: 1
  sites: Site[]
}

export interface SiteCarbon {
  /** gCO2e per kWh: one number, or 24 hourly values in the site's local time. */
  gridGPerKWh: number | number[]
  residualMixGPerKWh: number
  /** Share of consumption covered by green certificates, 0..1. */
  greenShare: number
}

export interface Site {
  id: string
  name?: string
  timezone: string
  latenessS?: number
  offlineAfterS?: number
  maxAgeS?: number
  carbon?: SiteCarbon
  meters?: { pv?: string[]; grid?: string[] }
  areas: Area[]
}

export interface Area {
  id: string
  name?: string
  lines: Line[]
}

export interface Line {
  id: string
  name?: string
  equipment: Equipment[]
}

export interface IdleThresholds {
  offBelowW: number
  runAboveW: number
  afterS: number
}

export type TuningMode = 'auto' | 'advise' | 'off'

export interface Tuning {
  setpoint: string
  unit?: string
  min: number
  max: number
  maxStep: number
  constraint: { measure: string; max: number; margin: number }
  mode: TuningMode
  commandTimeoutS?: number
}

export interface Equipment {
  id: string
  name?: string
  type: string
  ratedPowerW: number
  devices: string[]
  idle?: IdleThresholds
  tuning?: Tuning
}

/** Site settings of CONTRACT.md §1 with their defaults applied. */
export const SITE_DEFAULTS = Object.freeze({
  latenessS: 120,
  offlineAfterS: 900,
  maxAgeS: 604_800,
})

export const DEFAULT_COMMAND_TIMEOUT_S = 600

/** One problem found in a plant file, at a JSON path such as `sites[0].areas[1].lines[0].id`. */
export interface PlantProblem {
  path: string
  message: string
}

export type PlantValidation = { ok: true; plant: PlantModel } | { ok: false; problems: PlantProblem[] }
