// The tuning benchmark through the processor's composition (docs/benchmarks.md "Setpoint tuning
// through the processor's tuning loop"): the plant of packages/tuning/bench/closed-loop.ts (208
// tuned coating ovens at 9,000 devices), the simulator's physics joined in process, but the tuners
// driven by services/processor/src/tuning-loop.ts as the processor drives them: SenML decoded
// as the pipeline decodes it, each equipment's devices merged in event time, the equipment state
// from its own power, acks with the device's `t`, commands to the device that reports the
// setpoint, savings spread over minutes. No broker (the issue allows it on this machine).
//
//   node --import tsx services/processor/bench/tuning-loop.ts [--devices 9000] [--hours 72] [--interval 10] [--psm 0.3]

import { parseArgs } from 'node:util'
import { type Alert, decodeSenml, parseSetpointAck, type SetpointEvent } from '@plantwatt/contract'
import { AlertBook, EventLog } from '@plantwatt/detection'
import { PlantIndex } from '@plantwatt/plant'
import { startLoopDelayMonitor } from '@plantwatt/runtime'
import { generatePlant, PlantSimulation } from '../../../simulators/fleet/src/index.ts'
import { TuningLoop } from '../src/tuning-loop.ts'

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '9000' },
    hours: { type: 'string', default: '72' },
    interval: { type: 'string', default: '10' },
    psm: { type: 'string', default: '0' },
    'batch-s': { type: 'string', default: '120' },
  },
})
const hours = Number(values.hours)
const dt = Number(values.interval)
const psm = Number(values.psm)

/** The simulator's noise-free state of an oven (simulators/fleet/src/model/equipment.ts), as sim-loop.ts reads it. */
interface SimEquipment {
  clean: number
  kAirW: number
  fanRatedW: number
  fAct: number
  fRated: number
  feasible: number
  web: boolean
  pv: number
  physics: number
}
const K_OVEN = 1
function powerAt(eq: SimEquipment, f: number): number {
  const frNow = eq.fAct / eq.fRated
  const fr = f / eq.fRated
  const heater = eq.physics === K_OVEN ? eq.kAirW : 0
  return eq.clean - (heater * frNow + eq.fanRatedW * frNow ** 3) + (heater * fr + eq.fanRatedW * fr ** 3)
}

const wallStart = performance.now()
const model = generatePlant({ devices: Number(values.devices), seed: 3 })
const plant = new PlantIndex(model)
const startS = Date.UTC(2026, 0, 5, 0, 0, 0) / 1000
const tunedScopes: string[] = []
const emit = new Set<string>()
for (const node of plant.scopes.values()) {
  if (node.level !== 'equipment') continue
  const spec = (node as unknown as { spec: { tuning?: unknown; devices: string[] } }).spec
  if (spec.tuning === undefined) continue
  tunedScopes.push(node.scope)
  for (const d of spec.devices) emit.add(d)
}
const sim = new PlantSimulation({
  plant: model,
  seed: 11,
  startS,
  reportIntervalS: dt,
  faults: psm > 0 ? { psm: { share: psm, batchIntervalS: Number(values['batch-s']) } } : undefined,
  emitDevices: emit,
})
const simEquipment = sim.truthParts().equipment as unknown as Map<string, SimEquipment>
let nowS = startS
const alerts = new AlertBook(new EventLog<Alert>(10_000), 600)
const loop = new TuningLoop({
  plant,
  alerts,
  eventCapacity: 1_000_000,
  sendCommand: (_site, deviceId, command) => sim.receiveCommand(deviceId, command, nowS),
})

interface Referee {
  eq: SimEquipment
  lastFeasible: number
  changedAtS: number
  steadyS: number
  sumP: number
  sumPStar: number
  aboveMaxS: number
  savedTrueWh: number
  max: number
}
const referees = tunedScopes.map((scope) => {
  const tuner = loop.tuners.get(scope)!
  return {
    scope,
    eq: simEquipment.get(scope)!,
    lastFeasible: Number.NaN,
    changedAtS: startS,
    steadyS: 0,
    sumP: 0,
    sumPStar: 0,
    aboveMaxS: 0,
    savedTrueWh: 0,
    max: tuner.tuning.constraint.max,
  } as Referee & { scope: string }
})

const endS = startS + hours * 3600
// The event loop yields after each simulated step (one setImmediate, as a service yields between
// batches), so its delay is how long one step of the whole plant holds it (issue 13: event-loop
// delay with every benchmark).
const loopDelay = startLoopDelayMonitor()
for (nowS = startS + dt; nowS <= endS + 1e-9; nowS += dt) {
  await new Promise((resolve) => setImmediate(resolve))
  for (const m of sim.advanceTo(nowS)) {
    const device = plant.device(m.deviceId)
    if (device === undefined) continue
    if (m.kind === 'ack') loop.ack(device, parseSetpointAck(m.payload))
    else loop.readings(device, decodeSenml(m.payload, { receivedAt: m.sendAtS }).readings)
  }
  for (const r of referees) {
    const eq = r.eq
    if (eq.pv > r.max) r.aboveMaxS += dt
    if (!(Math.abs(eq.feasible - r.lastFeasible) <= 1e-9)) {
      r.lastFeasible = eq.feasible
      r.changedAtS = nowS
    }
    if (!eq.web) continue
    const start = loop.tuners.get(r.scope)!.startSetpoint ?? eq.fRated
    r.savedTrueWh += ((powerAt(eq, start) - eq.clean) * dt) / 3600
    if (nowS >= startS + 6 * 3600 && nowS >= r.changedAtS + 2 * 3600) {
      r.steadyS += dt
      r.sumP += eq.clean
      r.sumPStar += powerAt(eq, eq.feasible)
    }
  }
}

const eventLoopDelay = loopDelay.summary()
loopDelay.stop()
const durationS = endS - startS
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!
const excessOf = (r: Referee) => (r.sumPStar > 0 ? r.sumP / r.sumPStar - 1 : 0)
const excess = referees.map((r) => excessOf(r) * 100).sort((a, b) => a - b)
const above = referees.map((r) => (100 * r.aboveMaxS) / durationS).sort((a, b) => a - b)
const steadyTotal = referees.reduce((a, r) => a + r.steadyS, 0)
const savedTrue = referees.reduce((a, r) => a + r.savedTrueWh, 0)
const savedReported = tunedScopes.reduce((a, s) => a + loop.tuners.get(s)!.savedWh, 0)
// What the buckets carry: the minutes spread by the loop, summed over the whole site.
const site = model.sites[0]!.id
const savedInBuckets = loop.savedWh(site, startS * 1000, endS * 1000 + 60_000)
const events = loop.log.since(0).events.map((e) => e.event as SetpointEvent)
console.log(
  JSON.stringify(
    {
      tunedEquipment: referees.length,
      hours,
      intervalS: dt,
      psm: psm > 0 ? { share: psm, batchIntervalS: Number(values['batch-s']) } : undefined,
      wallS: Math.round((performance.now() - wallStart) / 100) / 10,
      eventLoopDelay,
      commands: loop.stats.commands,
      applied: events.filter((e) => e.status === 'applied').length,
      late: loop.stats.late,
      powerExcessPct: {
        weighted: (referees.reduce((a, r) => a + excessOf(r) * r.steadyS, 0) / steadyTotal) * 100,
        p50: pct(excess, 0.5),
        p95: pct(excess, 0.95),
        max: excess.at(-1),
      },
      aboveMaxPctOfTime: { p50: pct(above, 0.5), p95: pct(above, 0.95), max: above.at(-1) },
      equipmentOver1PctAboveMax: above.filter((a) => a > 1).length,
      savings: {
        trueKWh: Math.round(savedTrue / 1000),
        reportedKWh: Math.round(savedReported / 1000),
        inBucketsKWh: Math.round(savedInBuckets / 1000),
        ratio: savedReported / savedTrue,
      },
    },
    null,
    2,
  ),
)
