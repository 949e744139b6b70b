// A production line: the unit of simulation. Its equipment is coupled (the coater waits for its
// oven, the oven and its exhaust fan and NMP recovery follow the coater, stations feed each other
// through buffers), so a line is simulated whole or not at all, and it samples all its devices at
// the same instants: a fixed phase within each report interval, drawn per line, which spreads the
// fleet's packs over the interval instead of sending them all on the second.
//
// Starved and blocked: production machines of a line form stations (same type, in model order:
// winders → tab welders → electrolyte fillers), with a buffer of up to 30 minutes of line output
// between consecutive stations (half full at the start). A station whose input buffer is empty runs
// at the upstream flow (speed matching) as long as that is at least 30 % of its own capacity, and
// stops (idle, starved) below that until 1 minute of material has accumulated again; a station whose
// output buffer is full slows to the downstream flow likewise, or stops (blocked) until the buffer
// has 1 minute of room. So when an upstream machine stops, downstream ones go idle once the buffer
// has drained.

import { CONTINUOUS, hourOfDay, minuteOfWeek, PATTERNS, type Pattern, THREE_SHIFT, TWO_SHIFT } from './calendar.ts'
import type { DeviceSim } from './device.ts'
import {
  type EquipmentSim,
  K_FAN,
  K_MACHINE,
  K_NMP,
  K_OVEN,
  type Lags,
  MODE_RUN,
  type StepContext,
} from './equipment.ts'
import type { Rng } from './rng.ts'
import type { SiteSim } from './site.ts'

const BUFFER_CAPACITY_MIN = 30
const MIN_SPEED = 0.3
const CONTINUOUS_TYPES = new Set([
  'formation-cabinet',
  'ageing-rack',
  'air-handler',
  'chiller',
  'compressor',
  'vacuum-pump',
])

/** Shift pattern of a line: continuous for formation, ageing, dry rooms and utilities. */
export function patternOf(areaId: string, types: string[], rng: Rng): Pattern {
  const u = rng()
  if (types.some((type) => CONTINUOUS_TYPES.has(type))) return CONTINUOUS
  if (!types.some((type) => type !== 'fan' && type !== 'nmp-recovery')) return CONTINUOUS
  if (areaId === 'assembly') return u < 0.4 ? TWO_SHIFT : THREE_SHIFT
  return u < 0.2 ? TWO_SHIFT : THREE_SHIFT
}

const P3 = PATTERNS[THREE_SHIFT]!.planned
const P2 = PATTERNS[TWO_SHIFT]!.planned

export class LineSim {
  readonly scope: string
  readonly site: SiteSim
  readonly pattern: Pattern
  phaseMs: number
  dtMs: number
  readonly equipment: EquipmentSim[]
  private readonly machines: EquipmentSim[] = []
  private readonly ovens: EquipmentSim[] = []
  private readonly followers: EquipmentSim[] = []
  private readonly utilities: EquipmentSim[] = []
  private readonly stationSize: number[] = []
  private readonly avail: Float64Array
  private readonly flow: Float64Array
  private readonly speed: Float64Array
  private readonly buffers: Float64Array
  private readonly starved: Uint8Array
  private readonly blocked: Uint8Array
  /** Emitted devices of this line, sorted by id. */
  devices: DeviceSim[] = []
  private lastMinute = -1
  private started = false
  /** The previous sample's time: energy is integrated over the time actually elapsed since. */
  private lastSampleMs = 0
  private readonly ctx: StepContext

  constructor(
    scope: string,
    site: SiteSim,
    pattern: Pattern,
    phaseMs: number,
    equipment: EquipmentSim[],
    lags: Lags,
    dtMs: number,
  ) {
    this.scope = scope
    this.site = site
    this.pattern = pattern
    this.phaseMs = phaseMs
    this.dtMs = dtMs
    this.equipment = equipment
    const stationOf = new Map<string, number>()
    const firstCoater = equipment.find((eq) => eq.physics === K_MACHINE && eq.spec.type === 'coater')
    let firstOven: EquipmentSim | undefined
    for (const eq of equipment) {
      if (eq.physics === K_MACHINE) {
        let station = stationOf.get(eq.spec.type)
        if (station === undefined) {
          station = this.stationSize.length
          stationOf.set(eq.spec.type, station)
          this.stationSize.push(0)
        }
        eq.station = station
        this.stationSize[station]!++
        this.machines.push(eq)
      } else if (eq.physics === K_OVEN) {
        this.ovens.push(eq)
        if (firstOven === undefined) {
          firstOven = eq
          if (firstCoater) {
            eq.partner = firstCoater
            firstCoater.partner = eq
          }
        }
      } else if (eq.physics === K_FAN || eq.physics === K_NMP) this.followers.push(eq)
      else this.utilities.push(eq)
    }
    for (const eq of this.followers) eq.partner = firstOven
    const n = this.stationSize.length
    this.avail = new Float64Array(n)
    this.flow = new Float64Array(n).fill(1)
    this.speed = new Float64Array(n).fill(1)
    this.buffers = new Float64Array(Math.max(0, n - 1)).fill(BUFFER_CAPACITY_MIN / 2)
    this.starved = new Uint8Array(n)
    this.blocked = new Uint8Array(n)
    this.ctx = {
      sMs: 0,
      dtS: dtMs / 1000,
      lags,
      planned: true,
      toStartMin: 0,
      event: 0,
      plannedLoad: 1,
      occupancy: 1,
      ambient: 0.5,
    }
  }

  /**
   * A new report interval from the next tick on (PlantSimulation.setReportInterval): the step, its
   * lag factors and the line's phase within the interval.
   */
  setInterval(dtMs: number, lags: Lags, phaseMs: number): void {
    this.dtMs = dtMs
    this.phaseMs = phaseMs
    this.ctx.dtS = dtMs / 1000
    this.ctx.lags = lags
  }

  /** One report interval: physics of every equipment at sample time sMs, then its devices' samples. */
  step(sMs: number): void {
    const ctx = this.ctx
    const site = this.site
    const local = site.clock.localMs(sMs)
    const mow = minuteOfWeek(local)
    const table = PATTERNS[this.pattern]!
    ctx.sMs = sMs
    ctx.planned = table.planned[mow] === 1
    ctx.toStartMin = table.minutesToStart[mow]!
    ctx.event = mow !== this.lastMinute && this.lastMinute >= 0 ? table.event[mow]! : 0
    this.lastMinute = mow
    ctx.plannedLoad = 0.2 + 0.5 * P3[mow]! + 0.3 * P2[mow]!
    ctx.occupancy = 0.6 * P3[mow]! + 0.4 * P2[mow]!
    ctx.ambient = 0.5 + 0.5 * Math.cos((2 * Math.PI * (hourOfDay(local) - 15)) / 24)

    const equipment = this.equipment
    const dtS = ctx.dtS
    let before = 0
    if (this.started) {
      // Energy of the step that ends now, at the power read at its start, over the time since the
      // previous sample: one interval, except across a change of interval.
      const fromMs = this.lastSampleMs
      const elapsedS = (sMs - fromMs) / 1000
      for (let i = 0; i < equipment.length; i++) {
        const eq = equipment[i]!
        const p = eq.powerW
        before += p
        eq.energyWh += (p * elapsedS) / 3600
        if (eq.minutes !== undefined) eq.minutes.add(fromMs, sMs, p)
      }
    } else {
      for (let i = 0; i < equipment.length; i++) equipment[i]!.initialize(ctx)
    }

    const machines = this.machines
    for (let i = 0; i < machines.length; i++) machines[i]!.schedule(ctx)
    const ovens = this.ovens
    for (let i = 0; i < ovens.length; i++) ovens[i]!.schedule(ctx)
    this.couple(dtS)
    for (let i = 0; i < machines.length; i++) {
      const m = machines[i]!
      m.speed = this.speed[m.station]!
      m.stepMachine(ctx)
    }
    for (let i = 0; i < ovens.length; i++) {
      const oven = ovens[i]!
      const coater = oven.partner
      if (coater !== undefined) oven.stepOven(ctx, coater.mode === MODE_RUN, coater.pf * coater.speed)
      else oven.stepOven(ctx, oven.wants, oven.pf)
    }
    const followers = this.followers
    for (let i = 0; i < followers.length; i++) {
      const f = followers[i]!
      if (f.physics === K_FAN) f.stepFan(ctx)
      else f.stepNmp(ctx)
    }
    const utilities = this.utilities
    for (let i = 0; i < utilities.length; i++) utilities[i]!.stepUtility(ctx)

    let after = 0
    for (let i = 0; i < equipment.length; i++) {
      const eq = equipment[i]!
      after += eq.powerW
      if (!eq.started) {
        eq.started = true
        eq.energyStartWh = eq.energyWh
      }
      if (eq.detector !== undefined) {
        eq.detector.push(sMs, eq.powerW, eq.output > eq.lastOutput, eq.energyWh)
      }
      eq.lastOutput = eq.output
    }
    this.started = true
    this.lastSampleMs = sMs
    if (site.trackGrid) site.addConsumption(sMs, after - before)

    const devices = this.devices
    for (let i = 0; i < devices.length; i++) devices[i]!.sample(sMs)
  }

  private couple(dtS: number): void {
    const n = this.stationSize.length
    if (n === 0) return
    const avail = this.avail
    avail.fill(0)
    const machines = this.machines
    for (let i = 0; i < machines.length; i++) {
      const m = machines[i]!
      if (m.wants) avail[m.station]! += 1
    }
    for (let s = 0; s < n; s++) avail[s]! /= this.stationSize[s]!
    const flow = this.flow
    const buffers = this.buffers
    for (let s = 0; s < n; s++) {
      const a = avail[s]!
      let factor = 1
      let stop = false
      if (s > 0) {
        const b = buffers[s - 1]!
        if (this.starved[s] === 1) {
          if (b >= 1) this.starved[s] = 0
          else stop = true
        }
        if (!stop && b <= 0 && a > 0) {
          const ratio = flow[s - 1]! / a
          if (ratio < MIN_SPEED) {
            this.starved[s] = 1
            stop = true
          } else if (ratio < factor) factor = ratio
        }
      }
      if (s < n - 1) {
        const b = buffers[s]!
        if (this.blocked[s] === 1) {
          if (b <= BUFFER_CAPACITY_MIN - 1) this.blocked[s] = 0
          else stop = true
        }
        if (!stop && b >= BUFFER_CAPACITY_MIN && a > 0) {
          // flow[s + 1] still holds the downstream flow of the previous step.
          const ratio = flow[s + 1]! / a
          if (ratio < MIN_SPEED) {
            this.blocked[s] = 1
            stop = true
          } else if (ratio < factor) factor = ratio
        }
      }
      this.speed[s] = stop ? 0 : factor
      flow[s] = a * this.speed[s]!
    }
    for (let s = 0; s < n - 1; s++) {
      let b = buffers[s]! + ((flow[s]! - flow[s + 1]!) * dtS) / 60
      if (b < 0) b = 0
      else if (b > BUFFER_CAPACITY_MIN) b = BUFFER_CAPACITY_MIN
      buffers[s] = b
    }
  }
}
