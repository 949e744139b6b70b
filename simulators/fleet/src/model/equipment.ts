// Equipment physics: one EquipmentSim per equipment, stepped once per report interval by its line.
// Power is piecewise constant over each step (the value a device reads at the step's start), so
// energy counters and the minute truth integrate it exactly.
//
// Production machines (coater drive, mixer, calender, slitter, winder, stacker, tab welder,
// electrolyte filler, formation cabinet, and any type the generator does not know):
//   off → idle (powered, not producing) → running, driven by the line's shift calendar: machines
//   power on at the shift start or a few minutes before it, start producing after a short start
//   delay, and after the shift end stay on for a while (exponential, mean 8 min) or, 3 % of the time,
//   all night (the "ineffective operation" the plant wants to find). While running they suffer
//   micro-stops (10–90 s, shorter than any afterS), breakdowns (MTBF in running hours, MTTR with an
//   exponential tail, at least 3 min) and changeovers (every few hours, 10–45 min, then a new
//   product with a production-rate factor 0.8–1.2; operators also trim the speed by ±2–8 % every
//   1.5 running hours on average). Manual stations also stop at shift handovers and
//   meal breaks. Starved/blocked: see line.ts. Power follows its level with a 3 s lag (drives spin up
//   and down): off ≈ controls only, idle ≈ drives and hydraulics held, running = 85 % fixed + 15 %
//   proportional to speed. Output counters advance only while running (at least one unit per 40 s,
//   so §7's output rule never sees a running machine as idle). Formation cabinets also report cell
//   temperature (rises while charging, 10 min time constant).
//
// Drying ovens (coating lines): a thermal mass heated by a heater bank, with heat loss to the hall
//   and to the exhaust air (∝ airflow ∝ fan frequency). Warm-up from cold runs the heaters flat out
//   (≈ 0.6 × rated) until the set temperature is reached (40–60 min from cold, shorter when the oven
//   is still warm: it cools with a time constant of hours); then a controller holds the temperature
//   with a 60 s lag. When the web runs (the line's coater is running) the heaters also evaporate
//   solvent (∝ production rate) and the fans run at the frequency setpoint; with the web stopped the
//   PLC's standby mode runs the fans at 40 % speed: that is the oven's idle power, in the idle band.
//   Fan power = fanRated × (f / f_rated)³. Solvent concentration: steady state = base + K × rate /
//   (f / f_rated), reached with a 40 s lag; so the least feasible frequency is
//   f* = f_rated × K × rate / (max·(1 − margin) − base), clamped to the setpoint range, and it moves
//   with the production rate. The fan follows its setpoint with a 15 s lag. Heater faults (MTBF 150 h)
//   stop the heaters; the oven cools and the coater waits.
// Exhaust fans and NMP recovery of a coating line follow its oven: off with it, low in standby,
//   high while the web runs (fan power ∝ speed³; NMP load ∝ solvent flow, outlet ppm with it).
// Utilities, 24/7, whose load follows the site's planned production (shift calendars of the site,
//   lagged 30 min) and the hour of day (ambient temperature peaks at 15:00 local):
//   chiller (continuous load, supply temperature rises above 75 % load), compressor (fixed-speed
//   load/unload between 6.5 and 7.2 bar: saw-tooth pressure, loaded 95 % / unloaded 27 % power),
//   vacuum pump, dry-room air handler (desiccant load from occupancy and humidity, dew point
//   ≈ −45 °C), ageing rack (heated shelves, slowly varying).
//
// Noise: every power reading carries multiplicative triangular noise (±2–12 % by state and kind),
// but never on the other side of the equipment's offBelowW or runAboveW than the noise-free value:
// steady levels keep at least 5 % of runAboveW away from those thresholds (idle levels in the band
// [offBelowW + 6 % runAboveW, 93 % runAboveW], running ≥ 115 % runAboveW), so some idle levels sit
// close to a threshold and wobble near it, yet idle episodes stay well defined; values only cross a
// threshold on a real transition, which is a monotone lag. Equipment without `idle` thresholds
// uses offBelowW = 2 % and runAboveW = 30 % of rated power for this (reported in the truth).

import type { Equipment } from '@plantwatt/contract'
import { EVENT_HANDOVER, EVENT_MEAL } from './calendar.ts'
import type { IdleDetector } from './idle.ts'
import { exponential, type Rng, tri, uniform } from './rng.ts'
import type { MinuteSeries } from './series.ts'

export const MODE_OFF = 0
export const MODE_WARMUP = 1
export const MODE_IDLE = 2
export const MODE_RUN = 3

export const K_MACHINE = 0
export const K_OVEN = 1
export const K_FAN = 2
export const K_NMP = 3
export const K_AHU = 4
export const K_RACK = 5
export const K_CHILLER = 6
export const K_COMPRESSOR = 7
export const K_VACUUM = 8

const PHYSICS_BY_TYPE: Record<string, number> = {
  oven: K_OVEN,
  fan: K_FAN,
  'nmp-recovery': K_NMP,
  'air-handler': K_AHU,
  'ageing-rack': K_RACK,
  chiller: K_CHILLER,
  compressor: K_COMPRESSOR,
  'vacuum-pump': K_VACUUM,
}

interface MachineParams {
  /** Output units per second at production rate 1 (metres, kg, cells), range per unit. */
  unitRate: [number, number]
  mtbfH: number
  mttrMin: number
  changeoverEveryH: number
  changeoverMin: [number, number]
  /** Mean running minutes between micro-stops; 0 for none. */
  microEveryMin: number
  /** Stops at handovers and meal breaks. */
  manual: boolean
  runNoise: number
}

const MACHINES: Record<string, MachineParams> = {
  coater: {
    unitRate: [0.6, 1.4],
    mtbfH: 30,
    mttrMin: 25,
    changeoverEveryH: 8,
    changeoverMin: [15, 40],
    microEveryMin: 25,
    manual: false,
    runNoise: 0.03,
  },
  mixer: {
    unitRate: [0.15, 0.4],
    mtbfH: 50,
    mttrMin: 40,
    changeoverEveryH: 12,
    changeoverMin: [20, 45],
    microEveryMin: 60,
    manual: false,
    runNoise: 0.06,
  },
  calender: {
    unitRate: [0.9, 1.6],
    mtbfH: 40,
    mttrMin: 30,
    changeoverEveryH: 10,
    changeoverMin: [15, 30],
    microEveryMin: 30,
    manual: false,
    runNoise: 0.03,
  },
  slitter: {
    unitRate: [1.5, 2.5],
    mtbfH: 30,
    mttrMin: 20,
    changeoverEveryH: 6,
    changeoverMin: [10, 25],
    microEveryMin: 20,
    manual: true,
    runNoise: 0.04,
  },
  winder: {
    unitRate: [0.2, 0.5],
    mtbfH: 16,
    mttrMin: 15,
    changeoverEveryH: 12,
    changeoverMin: [15, 30],
    microEveryMin: 15,
    manual: true,
    runNoise: 0.06,
  },
  stacker: {
    unitRate: [0.1, 0.3],
    mtbfH: 16,
    mttrMin: 15,
    changeoverEveryH: 12,
    changeoverMin: [15, 30],
    microEveryMin: 15,
    manual: true,
    runNoise: 0.06,
  },
  welder: {
    unitRate: [0.3, 0.6],
    mtbfH: 20,
    mttrMin: 15,
    changeoverEveryH: 12,
    changeoverMin: [10, 20],
    microEveryMin: 20,
    manual: true,
    runNoise: 0.12,
  },
  'electrolyte-filler': {
    unitRate: [0.4, 0.8],
    mtbfH: 30,
    mttrMin: 20,
    changeoverEveryH: 16,
    changeoverMin: [15, 30],
    microEveryMin: 30,
    manual: true,
    runNoise: 0.04,
  },
  // Rolling operation: hundreds of channels finish cells continuously; gaps when no cells come.
  'formation-cabinet': {
    unitRate: [0.03, 0.06],
    mtbfH: 80,
    mttrMin: 60,
    changeoverEveryH: 24,
    changeoverMin: [20, 120],
    microEveryMin: 0,
    manual: false,
    runNoise: 0.02,
  },
  oven: {
    unitRate: [0, 0],
    mtbfH: 150,
    mttrMin: 45,
    changeoverEveryH: 8,
    changeoverMin: [15, 40],
    microEveryMin: 0,
    manual: false,
    runNoise: 0.01,
  },
}
const DEFAULT_MACHINE: MachineParams = {
  unitRate: [0.2, 0.6],
  mtbfH: 24,
  mttrMin: 20,
  changeoverEveryH: 10,
  changeoverMin: [15, 30],
  microEveryMin: 30,
  manual: false,
  runNoise: 0.04,
}

/** Output advances at least this fast while running (units/s): §7's output rule needs increases. */
const MIN_OUTPUT_RATE = 0.025
const PROCESS_UNITS: Record<string, string> = {
  solvent_ppm: 'ppm',
  nmp_ppm: 'ppm',
  dewpoint: 'Cel',
  cell_temp: 'Cel',
  supply_temp: 'Cel',
  pressure: 'Pa',
}

export function processUnit(measure: string): string | undefined {
  return PROCESS_UNITS[measure]
}

/** Lag factors 1 − exp(−dt/τ) for the time constants used, computed once per simulation. */
export class Lags {
  readonly a3: number
  readonly a8: number
  readonly a15: number
  readonly a40: number
  readonly a60: number
  readonly a120: number
  readonly a600: number
  readonly a1800: number
  constructor(dtS: number) {
    const f = (tau: number) => 1 - Math.exp(-dtS / tau)
    this.a3 = f(3)
    this.a8 = f(8)
    this.a15 = f(15)
    this.a40 = f(40)
    this.a60 = f(60)
    this.a120 = f(120)
    this.a600 = f(600)
    this.a1800 = f(1800)
  }
}

/** What one step of a line knows about time and the site (set by the line before stepping). */
export interface StepContext {
  sMs: number
  dtS: number
  lags: Lags
  planned: boolean
  /** Minutes to the next planned start (0 while planned). */
  toStartMin: number
  /** Calendar event starting this minute (EVENT_*), else 0. */
  event: number
  /** The site's planned production load 0.2..1 from its shift calendars. */
  plannedLoad: number
  /** People in the dry rooms: share of assembly shifts working, 0..1. */
  occupancy: number
  /** 0..1, peaks at 15:00 local. */
  ambient: number
}

const round1 = (x: number) => Math.round(x * 10) / 10

export class EquipmentSim {
  readonly spec: Equipment
  readonly scope: string
  readonly physics: number
  readonly production: boolean
  readonly rng: Rng
  readonly ratedW: number
  /** Effective idle thresholds (from the model, or implicit ones for the physics and the truth). */
  readonly offBelowW: number
  readonly runAboveW: number
  readonly afterS: number
  readonly thresholdsFromModel: boolean
  readonly hasOutput: boolean
  readonly processMeasure: string | undefined
  readonly tuned: boolean
  readonly params: MachineParams

  // Levels (W).
  offW = 0
  idleW = 0
  runW = 0
  unitRate = 0

  // State.
  mode = MODE_OFF
  powered = false
  wasPlanned = false
  started = false
  wants = false
  holdUntilMs = 0
  startDelayUntilMs = 0
  leftOnUntilMs = 0
  preStartMin = 0
  toMicroS = 0
  toBreakdownS = 0
  toChangeoverS = 0
  toSpeedChangeS = 0
  /** Production-rate factor of the current product, 0.8..1.2. */
  pf = 1
  /** Line speed factor from starved/blocked coupling this step (0 or 0.3..1). */
  speed = 1
  clean = 0
  powerW = 0
  energyWh = 0
  /** Energy at the first sample (the truth counts from there). */
  energyStartWh = 0
  outputAcc = 0
  output = 0
  lastOutput = 0
  /** Noise-free process state and its reported value. */
  pv = 0
  pvReported = 0
  spReported = 0
  /** Slow random state for utilities (Ornstein-Uhlenbeck, sd ≈ 0.35). */
  ou = 0
  load = 0
  loaded = false

  // Oven.
  tempC = 25
  setTempC = 130
  heatCapJPerK = 1
  heaterW = 0
  heaterMaxW = 0
  lossW = 0
  kAirW = 0
  fanRatedW = 0
  procW = 0
  ctrlW = 0
  controlled = false
  ready = false
  faultUntilMs = 0
  /** Web running through the oven this step, and its production rate (0 when stopped). */
  web = false
  rate = 0
  fAct = 0
  fRated = 50
  /** Setpoint applied by the device (commands), and its range. */
  setpoint = 50
  spMin = 0
  spMax = 0
  ppmBase = 0
  ppmK = 0
  ppmTarget = 0
  ppmNoise = 0
  feasible = Number.NaN
  /** Production rate while the web last ran (the current product's), for the feasible setpoint. */
  productRate = 1
  warmupLeadMin = 50

  /** For a coater: the oven of its line; for an oven/fan/NMP: the machine or oven it follows. */
  partner: EquipmentSim | undefined
  station = -1

  // Truth (only for equipment with an emitted device).
  minutes: MinuteSeries | undefined
  detector: IdleDetector | undefined
  feasibleFlat: number[] | undefined

  constructor(spec: Equipment, scope: string, rng: Rng, hasOutput: boolean, processMeasure: string | undefined) {
    this.spec = spec
    this.scope = scope
    this.rng = rng
    this.ratedW = spec.ratedPowerW
    this.physics = PHYSICS_BY_TYPE[spec.type] ?? K_MACHINE
    this.production = this.physics === K_MACHINE || this.physics === K_OVEN
    this.hasOutput = hasOutput
    this.processMeasure = processMeasure
    this.tuned = spec.tuning !== undefined
    this.params = MACHINES[spec.type] ?? DEFAULT_MACHINE
    const R = this.ratedW
    const idle = spec.idle
    this.thresholdsFromModel = idle !== undefined
    this.offBelowW = idle?.offBelowW ?? 0.02 * R
    this.runAboveW = idle?.runAboveW ?? 0.3 * R
    this.afterS = idle?.afterS ?? 300
    this.initLevels()
  }

  private initLevels(): void {
    const rng = this.rng
    const R = this.ratedW
    const off = this.offBelowW
    const run = this.runAboveW
    const given = this.thresholdsFromModel
    const lo = off + 0.06 * run
    const hi = 0.93 * run
    const band = (a: number, b: number) => (lo < hi ? lo + uniform(rng, a, b) * (hi - lo) : (off + run) / 2)
    this.offW = given ? Math.min(0.4 * off, 0.004 * R) * uniform(rng, 0.5, 1) : R * uniform(rng, 0.001, 0.004)
    this.idleW = given ? band(0.2, 0.9) : R * uniform(rng, 0.08, 0.2)
    this.runW = Math.max(R * uniform(rng, 0.6, 0.9), 1.3 * run)
    const p = this.params
    this.unitRate = this.hasOutput ? uniform(rng, p.unitRate[0], p.unitRate[1]) : 0
    this.pf = uniform(rng, 0.8, 1.2)
    this.productRate = this.pf
    this.toMicroS = p.microEveryMin > 0 ? exponential(rng, p.microEveryMin * 60) : Number.POSITIVE_INFINITY
    this.toBreakdownS = exponential(rng, p.mtbfH * 3600)
    this.toChangeoverS = uniform(rng, 0.1, 1.4) * p.changeoverEveryH * 3600
    this.toSpeedChangeS = exponential(rng, 5400)
    this.ou = 0.35 * tri(rng) * 2

    if (this.physics === K_OVEN) {
      this.ctrlW = given ? Math.min(0.004 * R, 0.45 * off) : 0.003 * R
      const hold = given ? band(0.25, 0.85) : R * uniform(rng, 0.14, 0.22)
      // Hold power at nominal proportions: loss 0.09 R + standby air 0.4 × 0.2 R + fans 0.4³ × 0.22 R.
      const scale = Math.max(0.05, (hold - this.ctrlW) / (0.1841 * R))
      this.lossW = 0.09 * R * scale
      this.kAirW = 0.2 * R * scale
      this.fanRatedW = 0.22 * R * scale
      const runMinRest = this.ctrlW + this.lossW + this.kAirW * 0.6 + this.fanRatedW * 0.216
      this.procW = Math.max(0.3 * R, (1.15 * run - runMinRest) / 0.7)
      const standbyLoss = this.lossW + this.kAirW * 0.4
      this.heaterMaxW = Math.max(0.6 * R, 1.8 * standbyLoss)
      this.setTempC = uniform(rng, 115, 145)
      const dT = this.setTempC - 25
      const g = standbyLoss / dT
      const dTeq = this.heaterMaxW / g
      const warmupS = uniform(rng, 40, 60) * 60
      this.heatCapJPerK = (g * warmupS) / Math.log(dTeq / (dTeq - dT))
      this.warmupLeadMin = warmupS / 60
      const tuning = this.spec.tuning
      if (tuning) {
        this.fRated = tuning.max
        this.spMin = tuning.min
        this.spMax = tuning.max
        const cmax = tuning.constraint.max
        this.ppmBase = 0.05 * cmax
        this.ppmTarget = cmax * (1 - tuning.constraint.margin)
        this.ppmNoise = (0.005 * cmax) / 0.408
      } else {
        this.fRated = 50
        this.ppmBase = 20
        this.ppmTarget = 380
        this.ppmNoise = 2 / 0.408
      }
      this.setpoint = this.fRated
      // At production rate 1 the least feasible frequency is 72–82 % of the rated one.
      this.ppmK = (this.ppmTarget - this.ppmBase) * uniform(rng, 0.72, 0.82)
    } else if (this.tuned) {
      // A tuned equipment of another type: an extra fan on the same meter, same constraint model.
      const tuning = this.spec.tuning!
      this.fRated = tuning.max
      this.spMin = tuning.min
      this.spMax = tuning.max
      this.setpoint = tuning.max
      this.fanRatedW = 0.2 * R
      const cmax = tuning.constraint.max
      this.ppmBase = 0.05 * cmax
      this.ppmTarget = cmax * (1 - tuning.constraint.margin)
      this.ppmNoise = (0.005 * cmax) / 0.408
      this.ppmK = (this.ppmTarget - this.ppmBase) * uniform(rng, 0.72, 0.82)
    }
  }

  /** State at the first sample: steady levels, no transients from an empty start. */
  initialize(ctx: StepContext): void {
    const rng = this.rng
    const planned = ctx.planned
    this.wasPlanned = planned
    this.preStartMin = this.physics === K_OVEN ? this.warmupLeadMin + uniform(rng, 0, 25) : 0
    if (planned) {
      this.powered = true
      if (rng() < 0.08) this.holdUntilMs = ctx.sMs + uniform(rng, 1, 30) * 60_000
    } else if (ctx.toStartMin <= this.preStartMin) {
      this.powered = true
    } else if (rng() < 0.05) {
      this.powered = true
      this.leftOnUntilMs = Number.POSITIVE_INFINITY
    }
    if (this.physics === K_OVEN && this.powered) {
      this.tempC = this.setTempC
      this.controlled = true
      this.ready = true
    }
    if (this.physics === K_COMPRESSOR) this.pv = uniform(rng, 6.5, 7.2)
    this.load = -1 // utilities take their target at once on the first step
  }

  // -------------------------------------------------------------------------------------------
  // Schedule and holds (production machines and ovens).

  /** Power plan from the calendar, calendar events and running-time failures; sets `wants`. */
  schedule(ctx: StepContext): void {
    const rng = this.rng
    const sMs = ctx.sMs
    const oven = this.physics === K_OVEN
    if (ctx.planned) {
      if (!this.wasPlanned) this.startDelayUntilMs = sMs + (rng() < 0.5 ? 0 : uniform(rng, 60, 480) * 1000)
      this.powered = true
    } else {
      if (this.wasPlanned) {
        const forgotten = rng() < (oven ? 0.05 : 0.03)
        const mean = oven ? 20 : 8
        this.leftOnUntilMs = forgotten
          ? Number.POSITIVE_INFINITY
          : sMs + Math.min(exponential(rng, mean), 6 * mean) * 60_000
        this.preStartMin = oven ? this.warmupLeadMin + uniform(rng, 0, 25) : rng() < 0.6 ? 0 : uniform(rng, 2, 25)
      }
      if (this.powered) {
        if (sMs >= this.leftOnUntilMs && ctx.toStartMin > this.preStartMin) this.powered = false
      } else if (ctx.toStartMin <= this.preStartMin) this.powered = true
    }
    this.wasPlanned = ctx.planned

    const p = this.params
    if (ctx.event !== 0 && ctx.planned) {
      if (ctx.event === EVENT_HANDOVER && rng() < (p.manual ? 0.4 : 0.15)) {
        this.hold(sMs + uniform(rng, 2, 15) * 60_000)
      } else if (ctx.event === EVENT_MEAL && p.manual && rng() < 0.35) {
        this.hold(sMs + uniform(rng, 20, 35) * 60_000)
      }
    }
    this.wants =
      this.powered &&
      ctx.planned &&
      sMs >= this.holdUntilMs &&
      sMs >= this.startDelayUntilMs &&
      (this.partner === undefined || this.partner.physics !== K_OVEN || this.partner.ready)
  }

  private hold(untilMs: number): void {
    if (untilMs > this.holdUntilMs) this.holdUntilMs = untilMs
  }

  /** Running-time failures, after a step spent running. */
  private wearWhileRunning(ctx: StepContext): void {
    const rng = this.rng
    const dt = ctx.dtS
    const p = this.params
    this.toMicroS -= dt
    if (this.toMicroS <= 0) {
      this.hold(ctx.sMs + uniform(rng, 10, 90) * 1000)
      this.toMicroS = exponential(rng, p.microEveryMin * 60)
    }
    this.toBreakdownS -= dt
    if (this.toBreakdownS <= 0) {
      const repairMin = Math.min(Math.max(exponential(rng, p.mttrMin), 3), 4 * p.mttrMin)
      this.hold(ctx.sMs + repairMin * 60_000)
      this.toBreakdownS = exponential(rng, p.mtbfH * 3600)
    }
    this.toSpeedChangeS -= dt
    if (this.toSpeedChangeS <= 0) {
      // Operators trim the line speed now and then (±2–8 %) without stopping.
      const step = uniform(rng, 0.02, 0.08) * (rng() < 0.5 ? -1 : 1)
      this.pf = Math.min(1.25, Math.max(0.75, this.pf * (1 + step)))
      this.toSpeedChangeS = exponential(rng, 5400)
    }
    this.toChangeoverS -= dt
    if (this.toChangeoverS <= 0) {
      this.hold(ctx.sMs + uniform(rng, p.changeoverMin[0], p.changeoverMin[1]) * 60_000)
      this.pf = uniform(rng, 0.8, 1.2)
      this.toChangeoverS = uniform(rng, 0.6, 1.4) * p.changeoverEveryH * 3600
    }
  }

  // -------------------------------------------------------------------------------------------
  // Physics per kind. Each sets `powerW` (rounded to 0.1 W) for the step starting now.

  /** A production machine, after the line has set `speed` (0 when starved or blocked). */
  stepMachine(ctx: StepContext): void {
    const running = this.wants && this.speed > 0
    this.mode = running ? MODE_RUN : this.powered ? MODE_IDLE : MODE_OFF
    const target = running ? this.runW * (0.85 + 0.15 * this.pf * this.speed) : this.powered ? this.idleW : this.offW
    if (this.started) this.clean += (target - this.clean) * ctx.lags.a3
    else this.clean = target
    const amp = running ? this.params.runNoise : this.powered ? 0.02 : 0.05
    const fanW = this.tuned ? this.stepTunedFan(ctx, running, running ? this.pf * this.speed : 0) : 0
    this.setPower(this.clean + fanW, amp)
    if (running) {
      const rate = this.unitRate * this.pf * this.speed
      this.outputAcc += Math.max(rate, MIN_OUTPUT_RATE) * ctx.dtS
      this.output = Math.floor(this.outputAcc)
      this.wearWhileRunning(ctx)
    }
    if (this.processMeasure !== undefined && !this.tuned) {
      this.stepProcess(running ? 31 + 6 * this.pf : this.powered ? 27 : 25, ctx.lags.a600, 0.35)
    }
  }

  /** The setpoint-driven fan of a tuned non-oven equipment (40 % speed when not running): its power. */
  private stepTunedFan(ctx: StepContext, running: boolean, rate: number): number {
    const fTarget = running ? this.setpoint : this.powered ? 0.4 * this.fRated : 0
    if (this.started) this.fAct += (fTarget - this.fAct) * ctx.lags.a15
    else this.fAct = fTarget
    const fr = this.fAct / this.fRated
    this.stepConstraint(ctx, running, rate, fr)
    return this.fanRatedW * fr * fr * fr
  }

  private stepConstraint(ctx: StepContext, web: boolean, rate: number, fr: number): void {
    const ss = web ? this.ppmBase + (this.ppmK * rate) / Math.max(fr, 0.05) : this.powered ? this.ppmBase * 0.5 : 2
    if (this.started) this.pv += (ss - this.pv) * ctx.lags.a40
    else this.pv = ss
    this.pvReported = round1(Math.max(0, this.pv + this.ppmNoise * tri(this.rng)))
    this.spReported = this.setpoint
    // The least feasible setpoint at the line's current production rate: it changes when production
    // changes (a new product, a slowed line), not during a stop, when the setpoint does not matter
    // (standby mode runs the fans at 40 % whatever it is).
    if (rate > 0) this.productRate = rate
    const f = ((this.ppmK * this.productRate) / (this.ppmTarget - this.ppmBase)) * this.fRated
    const feasible = f < this.spMin ? this.spMin : Math.min(f, this.spMax)
    if (this.tuned && !(Math.abs(feasible - this.feasible) <= 1e-9)) {
      this.feasible = feasible
      if (this.feasibleFlat !== undefined) this.feasibleFlat.push(ctx.sMs / 1000, Math.round(feasible * 1e4) / 1e4)
    }
  }

  /**
   * A drying oven. `web`/`rate`: the line's coater runs (or, for an oven without coater, its own
   * schedule wants to run), and at which production rate.
   */
  stepOven(ctx: StepContext, web: boolean, rate: number): void {
    const lags = ctx.lags
    const fault = ctx.sMs < this.faultUntilMs
    const standbyHz = 0.4 * this.fRated
    let fTarget = 0
    let heaterTarget = 0
    if (!this.powered) this.controlled = false
    else if (fault) {
      this.controlled = false
      fTarget = standbyHz
    } else if (!this.controlled) {
      if (this.tempC >= this.setTempC) this.controlled = true
      else {
        heaterTarget = this.heaterMaxW
        fTarget = standbyHz
      }
    }
    this.ready = this.controlled
    const webNow = web && this.ready
    this.web = webNow
    this.rate = webNow ? rate : 0
    if (this.controlled) fTarget = webNow ? this.setpoint : standbyHz
    if (this.started) this.fAct += (fTarget - this.fAct) * lags.a15
    else this.fAct = fTarget
    const fr = this.fAct / this.fRated
    const dT = this.setTempC - 25
    if (this.controlled) {
      this.tempC = this.setTempC
      heaterTarget = this.lossW + this.kAirW * fr + (webNow ? this.procW * rate : 0)
      if (this.started) this.heaterW += (heaterTarget - this.heaterW) * lags.a60
      else this.heaterW = heaterTarget
    } else {
      this.heaterW = heaterTarget
      const coolW = ((this.lossW + this.kAirW * fr) * (this.tempC - 25)) / dT
      this.tempC += ((this.heaterW - coolW) * ctx.dtS) / this.heatCapJPerK
    }
    this.mode = !this.powered ? MODE_OFF : !this.controlled ? MODE_WARMUP : webNow ? MODE_RUN : MODE_IDLE
    this.clean = this.ctrlW + this.heaterW + this.fanRatedW * fr * fr * fr
    this.setPower(this.clean, 0.01)
    if (this.powered && this.ready) this.wearOven(ctx, webNow)
    this.stepConstraint(ctx, webNow, rate, fr)
  }

  private wearOven(ctx: StepContext, webNow: boolean): void {
    if (this.partner === undefined) {
      // An oven without a coater runs its own production schedule (wants), with changeovers.
      if (webNow) this.wearWhileRunning(ctx)
      return
    }
    this.toBreakdownS -= ctx.dtS
    if (this.toBreakdownS <= 0) {
      const p = this.params
      const repairMin = Math.min(Math.max(exponential(this.rng, p.mttrMin), 3), 4 * p.mttrMin)
      this.faultUntilMs = ctx.sMs + repairMin * 60_000
      this.controlled = false
      this.ready = false
      this.toBreakdownS = exponential(this.rng, p.mtbfH * 3600)
    }
  }

  /** Exhaust fan following its oven (or running at 60 % without one). */
  stepFan(ctx: StepContext): void {
    const oven = this.partner
    const target = oven === undefined ? 0.6 : !oven.powered ? 0 : oven.web ? 0.75 + (0.2 * oven.rate) / 1.2 : 0.5
    this.lag(target, ctx.lags.a8)
    const s = this.load
    this.powered = oven === undefined || oven.powered || s > 0.05
    this.mode = s > 0.05 ? MODE_RUN : MODE_OFF
    this.clean = this.ratedW * (0.002 + 0.9 * s * s * s)
    this.setPower(this.clean, 0.02)
  }

  /** NMP recovery following its oven: load ∝ solvent flow, outlet concentration with it. */
  stepNmp(ctx: StepContext): void {
    const oven = this.partner
    const on = oven === undefined || oven.powered
    const flow = oven === undefined ? 0.6 : oven.web ? oven.rate : 0
    const target = !on ? 0 : 0.3 + (0.55 * flow) / 1.2
    this.lag(target, ctx.lags.a120)
    this.powered = on
    this.mode = on ? MODE_RUN : MODE_OFF
    this.clean = this.ratedW * (0.003 + 0.9 * this.load)
    this.setPower(this.clean, 0.02)
    this.stepProcess(on ? 6 + 25 * flow : 1.5, ctx.lags.a120, 0.8)
  }

  /** Utilities and other 24/7 loads. */
  stepUtility(ctx: StepContext): void {
    const rng = this.rng
    const lags = ctx.lags
    const a = lags.a600
    this.ou += -this.ou * a + 0.35 * Math.sqrt(2 * a) * tri(rng) * 2.45
    const R = this.ratedW
    let target: number
    this.powered = true
    this.mode = MODE_RUN
    switch (this.physics) {
      case K_CHILLER: {
        target = 0.15 + 0.5 * ctx.plannedLoad + 0.2 * ctx.ambient + 0.04 * this.ou
        this.lag(target, lags.a1800)
        this.clean = R * this.load
        this.setPower(this.clean, 0.02)
        this.stepProcess(6.8 + 4 * Math.max(0, this.load - 0.75), lags.a600, 0.1)
        return
      }
      case K_COMPRESSOR: {
        this.lag(0.25 + 0.55 * ctx.plannedLoad, lags.a1800)
        const demand = Math.min(0.95, Math.max(0.1, this.load + 0.05 * this.ou))
        const rise = (0.7 / 60) * ctx.dtS
        this.pv += this.loaded ? (1 - demand) * rise : -demand * rise
        if (this.loaded && this.pv >= 7.2) this.loaded = false
        else if (!this.loaded && this.pv <= 6.5) this.loaded = true
        this.clean += ((this.loaded ? 0.95 : 0.27) * R - this.clean) * lags.a3
        this.setPower(this.clean, 0.015)
        this.pvReported = Math.round((this.pv * 1e5 + 300 * tri(rng)) / 100) * 100
        return
      }
      case K_VACUUM:
        target = 0.45 + 0.35 * ctx.plannedLoad + 0.03 * this.ou
        this.lag(target, lags.a600)
        break
      case K_AHU: {
        const humidity = 0.5 + 0.5 * ctx.ambient
        target = 0.4 + 0.25 * ctx.occupancy + 0.2 * humidity + 0.03 * this.ou
        this.lag(target, lags.a600)
        this.clean = R * this.load
        this.setPower(this.clean, 0.015)
        this.stepProcess(-49 + 5 * ctx.occupancy + 3 * humidity, lags.a1800, 0.3)
        return
      }
      default:
        // Ageing racks: heated shelves, PWM-controlled heaters average out over a reading interval.
        target = 0.45 + 0.08 * this.ou
        this.lag(target, lags.a600)
    }
    this.clean = R * this.load
    this.setPower(this.clean, 0.015)
    if (this.processMeasure !== undefined) this.stepProcess(20 + 10 * this.load, lags.a600, 0.2)
  }

  private lag(target: number, a: number): void {
    this.load = this.load < 0 ? target : this.load + (target - this.load) * a
  }

  private stepProcess(target: number, a: number, noise: number): void {
    if (this.started) this.pv += (target - this.pv) * a
    else this.pv = target
    if (this.processMeasure !== undefined) this.pvReported = round1(this.pv + noise * tri(this.rng))
  }

  /** Rounded noisy power that stays on the noise-free value's side of both idle thresholds. */
  private setPower(clean: number, amp: number): void {
    let noisy = clean * (1 + amp * tri(this.rng))
    const off = this.offBelowW
    const run = this.runAboveW
    if (noisy < off !== clean < off || noisy < run !== clean < run) noisy = clean
    const rounded = round1(noisy)
    // Rounding must not cross a threshold either.
    this.powerW = rounded < off !== clean < off || rounded < run !== clean < run ? noisy : rounded
  }
}
