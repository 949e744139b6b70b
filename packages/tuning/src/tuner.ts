// The setpoint tuner of one tuned equipment (CONTRACT.md §1 `tuning`, §3, §5 `setpoints`, §7).
//
// It has no model of the machine; it learns from the responses it sees. Each decision judges a
// window of constraint readings taken once the last move has had time to act (the last 40 % of
// the dwell after a reading shows the new value):
// - the median above the limit L = max × (1 − margin): step up, sized by the learned sensitivity;
// - the median below L − σ (σ: the readings' noise, learned) by more than a dead band: step down,
//   sized to 80 % of the headroom over the learned sensitivity (maxStep while none is known yet);
// - otherwise settled: the window is judged again every dwell, so when production changes and the
//   optimum moves the tuner follows it — that is its "probing again now and then".
// The sensitivity dC/dsetpoint is learned from the moves' responses (window median after minus
// before, over the setpoint change), from moves of at least maxStep/4 between windows whose
// constraint held still; steps use the lower quartile of its magnitudes (production rises between
// windows inflate samples). A move down that draws no response where the smallest learned
// sensitivity says one should show means the setpoint does not act on the process at the moment
// (an oven warming up, the web stopped): back to the last good setpoint, hold for `backoffS`.
//
// Guardrails: setpoints only within [min, max]; no move larger than maxStep; a dwell between moves;
// a reading above `max` steps back at once towards the last good setpoint (at most maxStep, again
// every breachReactS while the breach lasts) and raises a `constraint` alert; holds, with a `held`
// event saying why, while data is stale, the device is offline, a command failed or was rejected,
// or the equipment is idle or off; a `command` alert when a device rejects a command or it times
// out (commandTimeoutS on the equipment's event time).
//
// Modes: `auto` applies; `advise` proposes and waits for approve/reject (a breach's step back is
// still applied at once: it returns to a setpoint already proven, and waiting for an operator
// would leave the process out of spec); `off` only reports (the breach alert included).
//
// Event time: every decision is taken at a constraint reading's time, every timeout on the
// equipment's clock (its latest reading time); ids come from the scope and the decision time
// (command-id.ts); so a replay at any speed gives the same moves. The whole state is plain data
// (toJSON / Tuner.fromJSON) for the processor's checkpoint.

import type { SetpointCommand, SetpointEvent, SetpointStatus, Tuning, TuningMode } from '@plantwatt/contract'
import { median, medianAbsoluteDeviation, quantile } from 'simple-statistics'
import { decisionId } from './command-id.ts'
import { addSample, fitPowerCurve, type PowerCurve, powerDifferenceW, type SlopeSample } from './savings.ts'
import type { AlertRequest, EquipmentState, TunerAck, TunerOptions, TunerOutput, TunerReading } from './types.ts'

const DEFAULTS: Required<TunerOptions> = {
  dwellS: 360,
  staleAfterS: 600,
  breachReactS: 30,
  minReadings: 3,
  backoffS: 1800,
}
/** Sensitivity samples kept (the newest win). */
const MAX_SENSITIVITY_SAMPLES = 8
/** Power readings further apart than this are not integrated (as CONTRACT.md §7 does for power). */
const MAX_POWER_GAP_MS = 900_000
const EPS = 1e-9
/** Half of the margin learned from breaches is forgotten after this long without one. */
const GUARD_HALF_LIFE_MS = 12 * 3_600_000

/** Readings kept per judged window (the first ones; one a second over a 360 s dwell is 180). */
export const MAX_WINDOW_READINGS = 2048

interface Window {
  startMs: number
  decideMs: number
  /** Constraint readings in the judged part of the window. */
  values: number[]
  max: number
  power: number[]
}

interface Judged {
  /** The first window after a hold or a start: the process may still be settling (heaters ramping). */
  fresh: boolean
  setpoint: number
  mean: number
  n: number
  /** The constraint held still over the window (no production change or stop inside it). */
  steady: boolean
  /** Median power of the window, or null when it did not hold still (see steadyPower). */
  powerMean: number | null
}

interface InFlight {
  id: string
  from: number
  to: number
  issuedMs: number
  acked: boolean
  confirmed: boolean
}

interface Proposal {
  id: string
  from: number
  to: number
  atMs: number
  reason: string
}

/** Everything a tuner knows, as plain JSON data (the checkpoint). */
export interface TunerState {
  version: 1
  clockMs: number | null
  startSetpoint: number | null
  current: number | null
  lastGood: number | null
  modeOverride: TuningMode | null
  equipmentState: EquipmentState
  online: boolean
  lastConstraintMs: number | null
  lastConstraint: number | null
  window: Window | null
  prev: Judged | null
  sigma: number | null
  sensitivity: number[]
  slopes: SlopeSample[]
  activeFloor: number | null
  inFlight: InFlight | null
  proposal: Proposal | null
  backoffUntilMs: number | null
  backoffReason: string | null
  lastStepUpMs: number | null
  breachSinceMs: number | null
  /** Extra distance below the limit learned from breaches (constraint units), and when it was last decayed. */
  guard: number
  guardAtMs: number | null
  commandAlertSinceMs: number | null
  held: string | null
  lastIdMs: number | null
  idSeq: number
  lastPowerMs: number | null
  lastSavedW: number
  savedWh: number
  moves: number
}

function freshState(): TunerState {
  return {
    version: 1,
    clockMs: null,
    startSetpoint: null,
    current: null,
    lastGood: null,
    modeOverride: null,
    equipmentState: 'unknown',
    online: true,
    lastConstraintMs: null,
    lastConstraint: null,
    window: null,
    prev: null,
    sigma: null,
    sensitivity: [],
    slopes: [],
    activeFloor: null,
    inFlight: null,
    proposal: null,
    backoffUntilMs: null,
    backoffReason: null,
    lastStepUpMs: null,
    breachSinceMs: null,
    guard: 0,
    guardAtMs: null,
    commandAlertSinceMs: null,
    held: null,
    lastIdMs: null,
    idSeq: 0,
    lastPowerMs: null,
    lastSavedW: 0,
    savedWh: 0,
    moves: 0,
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000

export class Tuner {
  readonly scope: string
  readonly tuning: Tuning
  private readonly options: Required<TunerOptions>
  private s: TunerState
  private out: TunerOutput = emptyOutput()
  private curve: PowerCurve | undefined
  private curveSamples = -1

  constructor(scope: string, tuning: Tuning, options: TunerOptions = {}, state?: TunerState) {
    this.scope = scope
    this.tuning = tuning
    this.options = { ...DEFAULTS, ...options }
    this.s = state === undefined ? freshState() : structuredClone(state)
  }

  static fromJSON(scope: string, tuning: Tuning, state: TunerState, options: TunerOptions = {}): Tuner {
    if (state?.version !== 1) throw new TypeError(`tuner state of ${scope}: unknown version`)
    return new Tuner(scope, tuning, options, state)
  }

  toJSON(): TunerState {
    return structuredClone(this.s)
  }

  // ---------------------------------------------------------------------------------------------
  // What the processor and the API read.

  get mode(): TuningMode {
    return this.s.modeOverride ?? this.tuning.mode
  }
  get current(): number | null {
    return this.s.current
  }
  get startSetpoint(): number | null {
    return this.s.startSetpoint
  }
  get lastGood(): number | null {
    return this.s.lastGood
  }
  get proposed(): { id: string; to: number } | null {
    return this.s.proposal === null ? null : { id: this.s.proposal.id, to: this.s.proposal.to }
  }
  get heldReason(): string | null {
    return this.s.held
  }
  /** Energy saved so far against the starting setpoint (Wh), the sum of every `saved` output. */
  get savedWh(): number {
    return this.s.savedWh
  }
  /** Commands sent so far. */
  get moves(): number {
    return this.s.moves
  }
  /**
   * The command sent and not answered yet: its id, its decision's event time and when it fails
   * (`commandTimeoutS` later, ms); null when none. While one is out, the device's ack is due, and
   * an input fed before it that is later in event time would change the outcome (an ack after the
   * reading that shows the new value leaves `applied` to that reading): whoever orders the inputs
   * holds the later ones for the ack (services/processor/src/tuning-loop.ts).
   */
  get awaitingAck(): { id: string; issuedMs: number; failsAtMs: number } | null {
    const f = this.s.inFlight
    if (f === null || f.acked) return null
    return { id: f.id, issuedMs: f.issuedMs, failsAtMs: f.issuedMs + this.timeoutMs }
  }
  private get timeoutMs(): number {
    return (this.tuning.commandTimeoutS ?? 600) * 1000
  }
  private get limit(): number {
    return this.tuning.constraint.max * (1 - this.tuning.constraint.margin)
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs. Each returns what to do: commands to publish, events, alerts, saved energy.

  /** Readings of the equipment at one instant, each device's in its own time order. */
  reading(r: TunerReading): TunerOutput {
    this.advanceClock(r.t)
    if (r.setpoint !== undefined && Number.isFinite(r.setpoint)) this.onSetpoint(r.t, r.setpoint)
    if (r.powerW !== undefined && Number.isFinite(r.powerW)) this.onPower(r.t, r.powerW)
    if (r.constraint !== undefined && Number.isFinite(r.constraint)) this.onConstraint(r.t, r.constraint)
    this.checkTimeouts()
    return this.flush()
  }

  /** The equipment's clock advanced (any reading of its devices): timeouts and staleness. */
  advance(tMs: number): TunerOutput {
    this.advanceClock(tMs)
    this.checkTimeouts()
    return this.flush()
  }

  equipmentState(state: EquipmentState, tMs: number): TunerOutput {
    this.advanceClock(tMs)
    if (state !== this.s.equipmentState) {
      this.s.equipmentState = state
      if (state !== 'running') this.forgetJudgement()
      this.noteHold(this.clock)
    }
    return this.flush()
  }

  deviceOnline(online: boolean, tMs: number): TunerOutput {
    this.advanceClock(tMs)
    if (online !== this.s.online) {
      this.s.online = online
      if (!online) this.forgetJudgement()
      this.noteHold(this.clock)
    }
    return this.flush()
  }

  ack(a: TunerAck): TunerOutput {
    const f = this.s.inFlight
    if (f === null || f.id !== a.id) return this.flush()
    const at = a.t
    if (a.status === 'applied') {
      if (!f.acked) this.event(f.id, f.from, f.to, 'applied', 'the device applied the command', at)
      f.acked = true
      this.clearCommandAlert(at)
      if (f.confirmed) this.s.inFlight = null
    } else {
      const reason = a.reason === undefined || a.reason === '' ? 'no reason given' : a.reason
      this.event(f.id, f.from, f.to, 'rejected', `the device rejected the command: ${reason}`, at)
      this.raiseCommandAlert(at, `device rejected ${this.tuning.setpoint} = ${f.to}: ${reason}`, { id: f.id, reason })
      this.s.inFlight = null
      this.backoff(this.clock, `the device rejected the last command (${reason})`)
    }
    return this.flush()
  }

  /** `PUT /api/v1/tuning` sets `mode` for every tuner; null gives the plant model's mode back. */
  setMode(mode: TuningMode | null, tMs: number): TunerOutput {
    this.advanceClock(tMs)
    const before = this.mode
    this.s.modeOverride = mode
    if (this.mode !== before && this.s.proposal !== null && this.mode !== 'advise') {
      const p = this.s.proposal
      this.s.proposal = null
      this.event(p.id, p.from, p.to, 'held', `proposal withdrawn: tuning mode is now ${this.mode}`, this.clock)
    }
    this.noteHold(this.clock)
    return this.flush()
  }

  /** An operator approves a proposal; undefined when no such proposal is open (HTTP 404). */
  approve(eventId: string): TunerOutput | undefined {
    const p = this.s.proposal
    if (p === null || p.id !== eventId) return undefined
    const at = this.clock
    this.s.proposal = null
    this.event(p.id, p.from, p.to, 'approved', 'approved by an operator', at)
    const current = this.s.current ?? p.from
    const blocked =
      this.s.inFlight !== null
        ? 'another command is in flight'
        : !this.s.online
          ? 'the device is offline'
          : Math.abs(p.to - current) > this.tuning.maxStep + EPS
            ? `the setpoint moved to ${current} since the proposal: the step would exceed maxStep`
            : undefined
    if (blocked !== undefined) this.event(p.id, current, p.to, 'held', `not sent: ${blocked}`, at)
    else this.send(p.id, current, p.to, at, 'sent', 'approved by an operator')
    return this.flush()
  }

  /** An operator rejects a proposal; undefined when no such proposal is open. */
  reject(eventId: string): TunerOutput | undefined {
    const p = this.s.proposal
    if (p === null || p.id !== eventId) return undefined
    this.s.proposal = null
    this.event(p.id, p.from, p.to, 'rejected', 'rejected by an operator', this.clock)
    this.backoff(this.clock, 'an operator rejected the last proposal')
    return this.flush()
  }

  // ---------------------------------------------------------------------------------------------

  private get clock(): number {
    return this.s.clockMs ?? 0
  }

  private advanceClock(tMs: number): void {
    if (Number.isFinite(tMs) && (this.s.clockMs === null || tMs > this.s.clockMs)) this.s.clockMs = tMs
  }

  private onSetpoint(t: number, value: number): void {
    const s = this.s
    if (s.startSetpoint === null) {
      s.startSetpoint = value
      s.lastGood = value
    }
    const f = s.inFlight
    if (f !== null && Math.abs(value - f.to) <= 1e-6 && !f.confirmed) {
      // A reading shows the new value: the move takes effect now; judge it after the dwell.
      f.confirmed = true
      if (!f.acked) {
        this.event(f.id, f.from, f.to, 'applied', 'a reading shows the new value (no ack yet)', t)
        this.clearCommandAlert(t)
      }
      s.inFlight = null
      s.current = value
      if (f.to > f.from) s.lastStepUpMs = t
      this.openWindow(t, true)
      return
    }
    if (s.current !== null && Math.abs(value - s.current) > 1e-6 && f === null) {
      // Changed outside the tuner (an operator at the panel): start judging afresh from here.
      s.prev = null
      this.openWindow(t, true)
    }
    s.current = value
  }

  private onPower(t: number, powerW: number): void {
    const s = this.s
    const w = s.window
    if (w !== null && t >= w.startMs && w.power.length < MAX_WINDOW_READINGS) w.power.push(powerW)
    // Savings: the power saved at the previous reading holds until this one (left rectangles).
    if (s.lastPowerMs !== null && t > s.lastPowerMs && t - s.lastPowerMs <= MAX_POWER_GAP_MS && s.lastSavedW > 0) {
      const wh = (s.lastSavedW * (t - s.lastPowerMs)) / 3_600_000
      s.savedWh += wh
      this.out.saved.push({ fromMs: s.lastPowerMs, toMs: t, wh })
    }
    if (s.lastPowerMs === null || t > s.lastPowerMs) {
      s.lastPowerMs = t
      s.lastSavedW = this.savedPowerW()
    }
  }

  /** Power saved now against the starting setpoint (W); 0 while the setpoint does not act. */
  private savedPowerW(): number {
    const s = this.s
    if (s.equipmentState !== 'running' || s.current === null || s.startSetpoint === null) return 0
    if (s.activeFloor === null || s.lastConstraint === null || s.lastConstraint < 0.5 * s.activeFloor) return 0
    if (s.current >= s.startSetpoint) return 0
    if (this.curveSamples !== s.slopes.length) {
      this.curve = fitPowerCurve(s.slopes)
      this.curveSamples = s.slopes.length
    }
    return this.curve === undefined ? 0 : Math.max(0, powerDifferenceW(this.curve, s.current, s.startSetpoint))
  }

  private onConstraint(t: number, c: number): void {
    const s = this.s
    if (s.lastConstraintMs === null || t >= s.lastConstraintMs) {
      s.lastConstraintMs = t
      s.lastConstraint = c
    }
    const w = s.window
    if (w !== null && t >= w.startMs) {
      if (w.values.length < MAX_WINDOW_READINGS) w.values.push(c)
      if (c > w.max) w.max = c
    }
    const max = this.tuning.constraint.max
    if (c > max) {
      this.onBreach(t, c)
      return
    }
    if (s.breachSinceMs !== null) {
      this.alert('constraint', 'cleared', t, s.breachSinceMs, `${this.tuning.constraint.measure} back to ${c}`, {
        value: c,
        max,
      })
      s.breachSinceMs = null
    }
    if (this.noteHold(t) !== null) return
    if (s.inFlight !== null || s.proposal !== null || s.current === null) return
    if (s.window === null) {
      this.openWindow(t, true)
      return
    }
    const win = s.window
    if (t < win.decideMs || win.values.length < this.options.minReadings) return
    this.judge(t, win)
  }

  private onBreach(t: number, c: number): void {
    const s = this.s
    const tuning = this.tuning
    const measure = tuning.constraint.measure
    if (s.breachSinceMs === null) {
      s.breachSinceMs = t
      this.learnFromBreach(t)
      this.alert('constraint', 'raised', t, t, `${measure} ${c} above its max ${tuning.constraint.max}`, {
        value: c,
        max: tuning.constraint.max,
        setpoint: s.current,
      })
    }
    if (this.mode === 'off') {
      this.hold(t, 'tuning is off: the constraint is above its max and no command is sent')
      return
    }
    if (!s.online) {
      this.hold(t, 'the device is offline')
      return
    }
    if (s.inFlight !== null || s.current === null) return
    if (s.lastStepUpMs !== null && t < s.lastStepUpMs + this.options.breachReactS * 1000) return
    const current = s.current
    const good = s.lastGood !== null && s.lastGood > current + EPS ? s.lastGood : Number.POSITIVE_INFINITY
    const to = Math.min(tuning.max, good, current + tuning.maxStep)
    if (to <= current + EPS) {
      this.hold(t, `${measure} above its max at the highest setpoint ${tuning.max}`)
      return
    }
    if (s.proposal !== null) {
      const p = s.proposal
      s.proposal = null
      this.event(p.id, p.from, p.to, 'held', 'proposal withdrawn: the constraint is above its max', t)
    }
    s.prev = null
    s.held = null
    const reason =
      good === Number.POSITIVE_INFINITY
        ? `${measure} ${c} above max ${tuning.constraint.max}: one step up`
        : `${measure} ${c} above max ${tuning.constraint.max}: back towards the last good ${s.lastGood}`
    this.send(this.nextId(t), current, round3(to), t, 'reverted', reason)
  }

  /** Judges a full window at the current setpoint and decides the next move. */
  private judge(t: number, w: Window): void {
    const s = this.s
    const tuning = this.tuning
    const current = s.current!
    // Medians, not means: a micro-stop of the line (tens of seconds, too short for the power to say
    // idle) drags the constraint far down for a few readings; a median ignores it.
    const n = w.values.length
    const mean = median(w.values)
    const sd = n >= 3 ? 1.4826 * medianAbsoluteDeviation(w.values) : 0
    const floor = 0.001 * tuning.constraint.max
    s.sigma = Math.max(floor, s.sigma === null ? sd : 0.8 * s.sigma + 0.2 * sd)
    const sigma = s.sigma
    const powerMean = steadyPower(w.power)
    let lo = Number.POSITIVE_INFINITY
    for (const v of w.values) if (v < lo) lo = v
    const steady = w.max - lo <= Math.max(8 * sigma, 0.04 * this.limit)
    const prev = s.prev

    if (prev !== null && Math.abs(prev.setpoint - current) > EPS) {
      const dsp = current - prev.setpoint
      const dc = mean - prev.mean
      const needed = 3 * sigma * Math.sqrt(1 / n + 1 / prev.n)
      if (dc * dsp < 0 && Math.abs(dc) >= needed) {
        // Small moves amplify whatever else moved the constraint between the windows (production):
        // only moves of at least a quarter of maxStep teach the sensitivity.
        if (Math.abs(dsp) >= tuning.maxStep / 4 && steady && prev.steady) {
          s.sensitivity.push(dc / dsp)
          if (s.sensitivity.length > MAX_SENSITIVITY_SAMPLES) s.sensitivity.shift()
        }
        const low = Math.min(mean, prev.mean)
        s.activeFloor = s.activeFloor === null ? low : Math.min(s.activeFloor, low)
        if (powerMean !== null && prev.powerMean !== null && !prev.fresh) {
          addSample(s.slopes, { from: prev.setpoint, to: current, dP: powerMean - prev.powerMean })
        }
      } else if (dsp < 0 && Math.abs(dc) < needed && this.expectedResponse(dsp) > 3 * needed) {
        // No response to a move down: the setpoint does not act on the process now.
        s.prev = null
        const back = s.lastGood !== null && s.lastGood > current + EPS ? s.lastGood : undefined
        const reason = `${tuning.constraint.measure} did not respond to ${tuning.setpoint} (${prev.mean.toFixed(1)} → ${mean.toFixed(1)})`
        if (back !== undefined) {
          this.send(this.nextId(t), current, round3(Math.min(back, current + tuning.maxStep)), t, 'reverted', reason)
        }
        this.backoff(t, `${reason}: the setpoint does not act on the process now`)
        return
      }
    }

    const limit = this.limit
    if (mean <= limit && w.max <= tuning.constraint.max) s.lastGood = current
    s.prev = { fresh: prev === null, setpoint: current, mean, n, steady, powerMean }

    // The lower quartile of the learned magnitudes, not the median: a production rise between two
    // windows inflates a sample, and an inflated sensitivity makes steps too small to follow.
    const sensitivity = s.sensitivity.length > 0 ? -quantile(s.sensitivity.map(Math.abs), 0.25) : undefined
    const aim = limit - sigma - this.decayedGuard(t)
    const deadband = Math.max(sigma, 0.0025 * tuning.constraint.max)
    const minStep = 0.01 * (tuning.max - tuning.min)
    let to = current
    let reason = ''
    if (mean > limit) {
      const wanted = sensitivity === undefined ? tuning.maxStep : (mean - aim) / -sensitivity
      to = Math.min(tuning.max, current + Math.min(tuning.maxStep, Math.max(minStep, wanted)))
      reason = `${tuning.constraint.measure} median ${mean.toFixed(1)} above the limit ${limit}: back off`
    } else if (mean < aim - deadband) {
      const wanted = sensitivity === undefined ? tuning.maxStep : (0.8 * (aim - mean)) / -sensitivity
      const step = Math.min(tuning.maxStep, wanted)
      if (step >= minStep) to = Math.max(tuning.min, current - step)
      reason = `${tuning.constraint.measure} median ${mean.toFixed(1)} below the limit ${limit} by ${(limit - mean).toFixed(1)}: step down`
    }
    to = round3(to)
    if (Math.abs(to - current) <= EPS || (to < current && current <= tuning.min + EPS)) {
      this.openWindow(t, false)
      return
    }
    const id = this.nextId(t)
    if (this.mode === 'advise') {
      s.proposal = { id, from: current, to, atMs: t, reason }
      this.event(id, current, to, 'proposed', reason, t)
      s.window = null
      return
    }
    this.send(id, current, to, t, 'sent', reason)
  }

  /**
   * A breach says the margin was not enough for how fast the process moves against how fast this
   * tuner can answer (a device that sleeps answers at its next wake): each breach adds a quarter of
   * the margin below the limit to where the tuner aims, up to the whole margin, and half of it is
   * forgotten every GUARD_HALF_LIFE_MS without one.
   */
  private learnFromBreach(t: number): void {
    const margin = this.tuning.constraint.max - this.limit
    this.s.guard = Math.min(margin, this.decayedGuard(t) + margin / 4)
  }

  private decayedGuard(t: number): number {
    const s = this.s
    if (s.guard > 0 && s.guardAtMs !== null && t > s.guardAtMs) {
      s.guard *= 0.5 ** ((t - s.guardAtMs) / GUARD_HALF_LIFE_MS)
      if (s.guard < 1e-6) s.guard = 0
    }
    s.guardAtMs = t
    return s.guard
  }

  /**
   * The least the constraint should have moved for a setpoint change, by what was learned: the
   * smallest learned sensitivity (a production change between two windows makes samples too big,
   * rarely too small). Moves under half a maxStep prove nothing either way; with nothing learned
   * yet, a move of half a maxStep or more must show a response.
   */
  private expectedResponse(dsp: number): number {
    if (Math.abs(dsp) < this.tuning.maxStep / 2) return 0
    const learned = this.s.sensitivity
    if (learned.length === 0) return Number.POSITIVE_INFINITY
    let least = Number.POSITIVE_INFINITY
    for (const x of learned) least = Math.min(least, Math.abs(x))
    return least * Math.abs(dsp)
  }

  private send(id: string, from: number, to: number, t: number, status: SetpointStatus, reason: string): void {
    const tuning = this.tuning
    // Guardrails, whatever asked for the move: within [min, max] and at most maxStep.
    const bounded = Math.min(
      tuning.max,
      Math.max(tuning.min, Math.min(from + tuning.maxStep, Math.max(from - tuning.maxStep, to))),
    )
    const value = round3(bounded)
    const command: SetpointCommand = { type: 'setpoint', id, name: tuning.setpoint, value, issuedAt: t / 1000 }
    this.out.commands.push(command)
    if (status !== 'sent') this.event(id, from, value, status, reason, t)
    this.event(id, from, value, 'sent', reason, t)
    this.s.inFlight = { id, from, to: value, issuedMs: t, acked: false, confirmed: false }
    this.s.window = null
    this.s.moves++
  }

  private checkTimeouts(): void {
    const s = this.s
    const now = this.clock
    const f = s.inFlight
    const timeoutMs = this.timeoutMs
    if (f !== null && !f.acked && now >= f.issuedMs + timeoutMs) {
      const at = f.issuedMs + timeoutMs
      this.event(f.id, f.from, f.to, 'failed', `no answer within commandTimeoutS (${timeoutMs / 1000} s)`, at)
      this.raiseCommandAlert(at, `no answer to ${this.tuning.setpoint} = ${f.to} within ${timeoutMs / 1000} s`, {
        id: f.id,
      })
      s.inFlight = null
      this.backoff(now, 'the last command failed (no answer)')
    } else if (f?.acked && !f.confirmed && now >= f.issuedMs + timeoutMs) {
      // Applied by the ack but no reading ever showed it: judge from what the readings say.
      s.inFlight = null
    }
    this.noteHold(now)
  }

  /** The reason to hold now, noting a `held` event when it is new; null when free to tune. */
  private noteHold(t: number): string | null {
    const s = this.s
    const staleMs = this.options.staleAfterS * 1000
    let reason: string | null = null
    if (this.mode === 'off') reason = 'tuning is off'
    else if (!s.online) reason = 'the device is offline'
    else if (s.equipmentState !== 'running') reason = `the equipment is ${s.equipmentState}`
    else if (s.lastConstraintMs !== null && s.clockMs !== null && s.clockMs - s.lastConstraintMs > staleMs)
      reason = `${this.tuning.constraint.measure} is stale (no reading for ${this.options.staleAfterS} s)`
    else if (s.backoffUntilMs !== null && t < s.backoffUntilMs) reason = s.backoffReason
    if (reason === null) {
      if (s.held !== null) s.held = null
      return null
    }
    this.hold(t, reason)
    return reason
  }

  private hold(t: number, reason: string): void {
    const s = this.s
    if (s.held === reason) return
    s.held = reason
    s.window = null
    s.prev = null
    // Before the device ever reported the setpoint, the range's top stands in (the rated value).
    const current = s.current ?? s.startSetpoint ?? this.tuning.max
    this.event(this.nextId(t, 'held'), current, current, 'held', reason, t)
  }

  private backoff(t: number, reason: string): void {
    this.s.backoffUntilMs = t + this.options.backoffS * 1000
    this.s.backoffReason = reason
    this.forgetJudgement()
  }

  private forgetJudgement(): void {
    this.s.window = null
    this.s.prev = null
  }

  private openWindow(t: number, settle: boolean): void {
    const dwell = this.options.dwellS * 1000
    this.s.window = {
      startMs: settle ? t + 0.6 * dwell : t,
      decideMs: t + dwell,
      values: [],
      max: Number.NEGATIVE_INFINITY,
      power: [],
    }
  }

  private nextId(t: number, kind = 'move'): string {
    const s = this.s
    if (s.lastIdMs === t) s.idSeq++
    else {
      s.lastIdMs = t
      s.idSeq = 0
    }
    return decisionId(this.scope, t, s.idSeq, kind)
  }

  private event(id: string, from: number, to: number, status: SetpointStatus, reason: string, at: number): void {
    const e: SetpointEvent = {
      id,
      scope: this.scope,
      name: this.tuning.setpoint,
      from,
      to,
      mode: this.mode,
      status,
      reason,
      at,
    }
    this.out.events.push(e)
  }

  private raiseCommandAlert(at: number, message: string, data: Record<string, unknown>): void {
    if (this.s.commandAlertSinceMs === null) this.s.commandAlertSinceMs = at
    this.alert('command', 'raised', at, this.s.commandAlertSinceMs, message, data)
  }

  private clearCommandAlert(at: number): void {
    const since = this.s.commandAlertSinceMs
    if (since === null) return
    this.s.commandAlertSinceMs = null
    this.alert('command', 'cleared', at, since, 'a command was applied', {})
  }

  private alert(
    kind: AlertRequest['kind'],
    state: AlertRequest['state'],
    at: number,
    since: number,
    message: string,
    data: Record<string, unknown>,
  ): void {
    this.out.alerts.push({
      kind,
      state,
      severity: kind === 'constraint' ? 'critical' : 'warning',
      scope: this.scope,
      at,
      since,
      message,
      data,
    })
  }

  private flush(): TunerOutput {
    const out = this.out
    this.out = emptyOutput()
    return out
  }
}

/**
 * The median power of a window, or null when the power did not hold still over it: a window that
 * holds the tail of a line stop (the heaters coming back take minutes) or a production change
 * would make the move's power difference mostly about something else. Steady: every reading
 * within 3 % of the window's range (an oven's readings carry ±1 % noise). Equipment noisier
 * than that gives no power samples, and so claims no savings: the tuner cannot tell.
 */
export function steadyPower(power: readonly number[]): number | null {
  if (power.length < 3) return null
  const level = median(power)
  let lo = Number.POSITIVE_INFINITY
  let hi = Number.NEGATIVE_INFINITY
  for (const p of power) {
    if (p < lo) lo = p
    if (p > hi) hi = p
  }
  return hi - lo <= 0.03 * Math.abs(level) ? level : null
}

export function emptyOutput(): TunerOutput {
  return { commands: [], events: [], alerts: [], saved: [] }
}
