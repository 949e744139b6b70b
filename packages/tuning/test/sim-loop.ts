// The closed loop in process: the fleet simulator's physics joined directly to one Tuner per tuned
// equipment, no broker. The tuner sees only what the devices publish (SenML decoded as the
// processor does, acks as CONTRACT.md §3 payloads), its commands go to the device that reports the
// setpoint (PlantSimulation.receiveCommand), and the simulator's noise-free state is the referee:
//
// - aboveMaxS: simulated time with the true constraint above `max` (whole run, every equipment);
// - steady state (after the first 6 h, and from 2 h after each change of the least feasible
//   setpoint f*, i.e. of production): the true power drawn against the power the equipment would
//   draw at f* at the same instant — the same physics with the fan at f* instead of where it is;
// - true savings: what it would draw at the starting setpoint minus what it drew.
//
// The equipment state the tuner gets is what the processor's detection would judge from the
// reported power (CONTRACT.md §7, no output counter: idle while offBelowW ≤ power < runAboveW).

import {
  decodeSenml,
  type PlantModel,
  parseSetpointAck,
  type SetpointCommand,
  type SetpointEvent,
} from '@plantwatt/contract'
import { deviceRolesOf, type FaultOptions, generatePlant, PlantSimulation } from '@plantwatt/fleet'
import { type EquipmentState, Tuner, type TunerOptions, type TunerOutput } from '../src/index.ts'

export interface LoopOptions {
  /** Generated plant size (devices); only its tuned equipment's lines are simulated. */
  devices: number
  /** At most this many tuned equipment (the first ones); default all. */
  tuned?: number
  hours: number
  reportIntervalS: number
  seed?: number
  startS?: number
  faults?: FaultOptions
  tuner?: TunerOptions
  /** Called with the tuners every simulated hour (e.g. to checkpoint and restore them). */
  everyHour?: (tuners: Map<string, Tuner>, hour: number) => Map<string, Tuner>
  /** Called after every step with the simulator's state of each tuned equipment (debugging). */
  onStep?: (nowS: number, scope: string, eq: SimEquipment, tuner: Tuner) => void
}

export interface EquipmentScore {
  scope: string
  steadyS: number
  /** Σ true power / Σ power at f*, over steady-state time, minus 1. */
  excess: number
  aboveMaxS: number
  savedTrueWh: number
  savedReportedWh: number
  moves: number
  finalSetpoint: number | null
  finalFeasible: number
  productionChanges: number
}

export interface LoopResult {
  durationS: number
  equipment: EquipmentScore[]
  events: SetpointEvent[]
  commands: SetpointCommand[]
  alerts: number
  tuners: Map<string, Tuner>
  /** Wall-clock ms the run took (for the benchmark). */
  wallMs: number
}

interface Tracked {
  scope: string
  sim: SimEquipment
  tuner: Tuner
  commandDevice: string
  offBelowW: number
  runAboveW: number
  state: EquipmentState
  lastFeasible: number
  changedAtS: number
  productionChanges: number
  steadyS: number
  sumP: number
  sumPStar: number
  aboveMaxS: number
  savedTrueWh: number
}

/** The fields of the simulator's EquipmentSim the referee reads (simulators/fleet/src/model/equipment.ts). */
export interface SimEquipment {
  clean: number
  kAirW: number
  fanRatedW: number
  fAct: number
  fRated: number
  feasible: number
  web: boolean
  pv: number
  physics: number
  offBelowW: number
  runAboveW: number
}

const K_OVEN = 1

/** Power the equipment would draw with its fan at `f` instead of where it is, all else equal (W). */
function powerAt(eq: SimEquipment, f: number): number {
  const frNow = eq.fAct / eq.fRated
  const fr = f / eq.fRated
  const heater = eq.physics === K_OVEN ? eq.kAirW : 0
  return eq.clean - (heater * frNow + eq.fanRatedW * frNow ** 3) + (heater * fr + eq.fanRatedW * fr ** 3)
}

export function tunedPlant(devices: number, seed = 3): PlantModel {
  return generatePlant({ devices, seed })
}

export function runClosedLoop(o: LoopOptions): LoopResult {
  const wallStart = performance.now()
  const plant = tunedPlant(o.devices)
  const startS = o.startS ?? Date.UTC(2026, 0, 5, 0, 0, 0) / 1000
  const emit = new Set<string>()
  const specs: { scope: string; spec: PlantModel['sites'][0]['areas'][0]['lines'][0]['equipment'][0] }[] = []
  for (const site of plant.sites)
    for (const area of site.areas)
      for (const line of area.lines)
        for (const eq of line.equipment) {
          if (eq.tuning === undefined) continue
          if (o.tuned !== undefined && specs.length >= o.tuned) continue
          specs.push({ scope: `${site.id}/${area.id}/${line.id}/${eq.id}`, spec: eq })
          for (const d of eq.devices) emit.add(d)
        }
  const sim = new PlantSimulation({
    plant,
    seed: o.seed ?? 11,
    startS,
    reportIntervalS: o.reportIntervalS,
    faults: o.faults,
    emitDevices: emit,
  })
  const simEquipment = sim.truthParts().equipment as unknown as Map<string, SimEquipment>
  let tuners = new Map<string, Tuner>()
  const byDevice = new Map<string, Tracked>()
  const tracked: Tracked[] = []
  for (const { scope, spec } of specs) {
    const eqSim = simEquipment.get(scope)
    if (eqSim === undefined) throw new Error(`${scope} not simulated`)
    const tuner = new Tuner(scope, spec.tuning!, o.tuner)
    tuners.set(scope, tuner)
    const roles = deviceRolesOf(spec)
    const t: Tracked = {
      scope,
      sim: eqSim,
      tuner,
      commandDevice: roles.process?.device ?? roles.power,
      offBelowW: spec.idle?.offBelowW ?? eqSim.offBelowW,
      runAboveW: spec.idle?.runAboveW ?? eqSim.runAboveW,
      state: 'unknown',
      lastFeasible: Number.NaN,
      changedAtS: startS,
      productionChanges: 0,
      steadyS: 0,
      sumP: 0,
      sumPStar: 0,
      aboveMaxS: 0,
      savedTrueWh: 0,
    }
    tracked.push(t)
    for (const d of spec.devices) byDevice.set(d, t)
  }
  const lastReadingMs = new Map<string, number>()
  const events: SetpointEvent[] = []
  const commands: SetpointCommand[] = []
  let alerts = 0

  const take = (t: Tracked, out: TunerOutput, nowS: number) => {
    events.push(...out.events)
    alerts += out.alerts.length
    for (const c of out.commands) {
      commands.push(c)
      sim.receiveCommand(t.commandDevice, c, nowS)
    }
  }

  const endS = startS + o.hours * 3600
  const dt = o.reportIntervalS
  let nextHour = startS + 3600
  for (let now = startS + dt; now <= endS + 1e-9; now += dt) {
    for (const m of sim.advanceTo(now)) {
      const t = byDevice.get(m.deviceId)
      if (t === undefined) continue
      if (m.kind === 'ack') {
        const ack = parseSetpointAck(m.payload)
        if (ack === undefined) continue
        // §3: an ack without `t` carries the time of the device's latest accepted reading.
        const at = lastReadingMs.get(m.deviceId) ?? m.sendAtS * 1000
        take(t, t.tuner.ack({ ...ack, t: at }), now)
        continue
      }
      const { readings } = decodeSenml(m.payload, { receivedAt: m.sendAtS })
      // One tuner reading per instant: a device's records of one sample share their time.
      let i = 0
      while (i < readings.length) {
        const time = readings[i]!.time
        const r: { t: number; setpoint?: number; constraint?: number; powerW?: number } = { t: time * 1000 }
        for (; i < readings.length && readings[i]!.time === time; i++) {
          const x = readings[i]!
          if (x.name === 'power') r.powerW = x.value
          else if (x.name === t.tuner.tuning.setpoint) r.setpoint = x.value
          else if (x.name === t.tuner.tuning.constraint.measure) r.constraint = x.value
        }
        const prevMs = lastReadingMs.get(m.deviceId)
        if (prevMs === undefined || r.t > prevMs) lastReadingMs.set(m.deviceId, r.t)
        if (r.powerW !== undefined) {
          const p = r.powerW
          const state: EquipmentState = p < t.offBelowW ? 'off' : p < t.runAboveW ? 'idle' : 'running'
          if (state !== t.state) {
            t.state = state
            take(t, t.tuner.equipmentState(state, r.t), now)
          }
        }
        take(t, t.tuner.reading(r), now)
      }
    }
    // The referee: the simulator's noise-free state at this instant, held for dt.
    for (const t of tracked) {
      const eq = t.sim
      o.onStep?.(now, t.scope, eq, t.tuner)
      const max = t.tuner.tuning.constraint.max
      if (eq.pv > max) t.aboveMaxS += dt
      if (!(Math.abs(eq.feasible - t.lastFeasible) <= 1e-9)) {
        if (!Number.isNaN(t.lastFeasible)) t.productionChanges++
        t.lastFeasible = eq.feasible
        t.changedAtS = now
      }
      if (!eq.web) continue
      const start = t.tuner.startSetpoint ?? eq.fRated
      t.savedTrueWh += ((powerAt(eq, start) - eq.clean) * dt) / 3600
      if (now >= startS + 6 * 3600 && now >= t.changedAtS + 2 * 3600) {
        t.steadyS += dt
        t.sumP += eq.clean
        t.sumPStar += powerAt(eq, eq.feasible)
      }
    }
    if (now >= nextHour) {
      const hour = Math.round((nextHour - startS) / 3600)
      nextHour += 3600
      if (o.everyHour !== undefined) {
        tuners = o.everyHour(tuners, hour)
        for (const t of tracked) t.tuner = tuners.get(t.scope)!
      }
    }
  }
  return {
    durationS: endS - startS,
    equipment: tracked.map((t) => ({
      scope: t.scope,
      steadyS: t.steadyS,
      excess: t.sumPStar > 0 ? t.sumP / t.sumPStar - 1 : 0,
      aboveMaxS: t.aboveMaxS,
      savedTrueWh: t.savedTrueWh,
      savedReportedWh: t.tuner.savedWh,
      moves: t.tuner.moves,
      finalSetpoint: t.tuner.current,
      finalFeasible: t.sim.feasible,
      productionChanges: t.productionChanges,
    })),
    events,
    commands,
    alerts,
    tuners,
    wallMs: performance.now() - wallStart,
  }
}
