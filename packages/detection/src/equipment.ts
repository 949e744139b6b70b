// One equipment's detection state: the latest power and output of each of its devices, its power
// (the sum of the latest power of its devices, CONTRACT.md §5 `powerW`), whether its output counter
// rose, the thresholds in force (given, or learned), the idle machine and the anomaly detector.
// Fed in the equipment's own time order by the reorder buffer; one step per distinct reading time.

import type { EquipmentNode } from '@plantwatt/plant'
import { AnomalyDetector, type AnomalyJson, type AnomalyTransition } from './anomaly.ts'
import { IdleMachine, type IdleMachineJson, type IdleTransition, type Thresholds } from './idle-machine.ts'
import type { DetectionOptions } from './options.ts'
import { type LearnerJson, ThresholdLearner } from './thresholds.ts'

export type EquipmentState = 'off' | 'idle' | 'running' | 'unknown'

/** Idle thresholds in force for an equipment, as GET /api/v1/plant shows them (CONTRACT.md §6). */
export interface ThresholdsInForce {
  origin: 'given' | 'learned' | 'none'
  offBelowW: number | null
  runAboveW: number | null
  afterS: number | null
  /** `output` with an output counter (§7), `band` without; null before any reading. */
  rule: 'output' | 'band' | null
  /** Learned only: the power levels found (W), lowest first. */
  levelsW?: number[]
}

export const MEASURE_POWER = 0
export const MEASURE_OUTPUT = 1

/**
 * Steps kept (time, power, output rose) while an equipment's thresholds are not yet usable, so that
 * thresholds learned during an episode can start it where §7 does: 64 steps is an hour of one
 * reading a minute for one device, 20 minutes for three. 17 bytes each per equipment (1.1 KB), and
 * in checkpoints only until the thresholds are learned.
 */
const RECENT_STEPS = 64

/** What a step produced, for the Detection to turn into alerts and port calls. */
export interface StepResult {
  idle: IdleTransition
  /** An idle episode ended because the rule changed (output counter first seen) before this step. */
  reset: IdleTransition
  anomaly: AnomalyTransition
}

export interface EquipmentJson {
  power: (number | null)[]
  powerT: (number | null)[]
  output: (number | null)[]
  outputT: (number | null)[]
  useOutput: boolean
  lastIncreaseS: number | null
  lastStepS: number | null
  learner: LearnerJson | null
  machine: IdleMachineJson
  anomaly: AnomalyJson
  /**
   * Recent steps, oldest first, as time, power, output rose 0/1 after one another: one typed array
   * (node:v8 copies it whole; an object with index keys after a JSON round trip); triples in
   * checkpoints written before it; absent in older ones.
   */
  recent?: Float64Array | Record<string, number> | [number, number, number][]
  /** Thresholds were usable at the latest step. */
  usable?: boolean
}

export class EquipmentDetector {
  readonly slots = new Map<string, number>()
  /**
   * Told once before the next change of this equipment's state, then forgotten: a checkpoint
   * taken over several turns (capture.ts) copies the state as it was at its snapshot first. An
   * object and this equipment's index in it, not a closure: arming thousands of equipment in the
   * snapshot's turn then allocates nothing.
   */
  capture: { beforeChange(index: number): void } | undefined = undefined
  captureIndex = 0
  private readonly power: Float64Array
  private readonly powerT: Float64Array
  private readonly output: Float64Array
  private readonly outputT: Float64Array
  private useOutput = false
  private ruleChanged = false
  private increased = false
  private changed = false
  private lastIncreaseS = Number.NEGATIVE_INFINITY
  lastStepS = Number.NEGATIVE_INFINITY
  /** Sum of the latest power of the devices that reported power; NaN before any. */
  powerW = Number.NaN
  private readonly learner: ThresholdLearner | undefined
  private readonly machine: IdleMachine
  private readonly anomaly: AnomalyDetector
  /** Ring of the latest RECENT_STEPS steps; recentNext is where the next goes. */
  private readonly recentT = new Float64Array(RECENT_STEPS)
  private readonly recentW = new Float64Array(RECENT_STEPS)
  private readonly recentRose = new Uint8Array(RECENT_STEPS)
  private recentCount = 0
  private recentNext = 0
  private usable = false

  constructor(
    readonly node: EquipmentNode,
    private readonly options: Readonly<DetectionOptions>,
  ) {
    const n = node.spec.devices.length
    for (const [slot, id] of node.spec.devices.entries()) this.slots.set(id, slot)
    this.power = new Float64Array(n).fill(Number.NaN)
    this.powerT = new Float64Array(n).fill(Number.NEGATIVE_INFINITY)
    this.output = new Float64Array(n).fill(Number.NaN)
    this.outputT = new Float64Array(n).fill(Number.NEGATIVE_INFINITY)
    if (node.spec.idle === undefined) this.learner = new ThresholdLearner(node.spec.ratedPowerW, options)
    this.machine = new IdleMachine(options.hysteresisShare, options.hysteresisOffShare)
    this.anomaly = new AnomalyDetector(node.spec.ratedPowerW, options)
  }

  /**
   * Takes one reading into the latest values. A reading not newer than the latest of its device and
   * measurement already taken (a duplicate, or a stale one behind the watermark) changes nothing.
   */
  apply(slot: number, measure: number, tS: number, value: number): void {
    if (this.capture !== undefined) this.changing()
    if (measure === MEASURE_POWER) {
      if (!(tS > this.powerT[slot]!)) return
      this.powerT[slot] = tS
      this.power[slot] = value
    } else {
      if (!(tS > this.outputT[slot]!)) return
      const previous = this.output[slot]!
      // CONTRACT.md §2: a decrease is a reset; the new value counts, so above 0 is an increase.
      if (!Number.isNaN(previous) && (value < previous ? value > 0 : value > previous)) this.increased = true
      this.outputT[slot] = tS
      this.output[slot] = value
      if (!this.useOutput) {
        this.useOutput = true
        this.ruleChanged = true
      }
    }
    this.changed = true
  }

  /** Steps the machines at tS after the readings of that time were applied. */
  step(tS: number): StepResult | undefined {
    if (!this.changed) return undefined
    if (this.capture !== undefined) this.changing()
    this.changed = false
    const increased = this.increased
    this.increased = false
    if (tS < this.lastStepS) tS = this.lastStepS
    this.lastStepS = tS
    if (increased) this.lastIncreaseS = tS
    let reset: IdleTransition
    if (this.ruleChanged) {
      this.ruleChanged = false
      reset = this.machine.reset(tS)
    }
    let sum = 0
    let any = false
    for (let i = 0; i < this.power.length; i++) {
      const p = this.power[i]!
      if (!Number.isNaN(p)) {
        sum += p
        any = true
      }
    }
    if (!any) return reset ? { idle: undefined, reset, anomaly: undefined } : undefined
    this.powerW = sum
    this.learner?.add(tS, sum)
    const th = this.usableThresholds()
    const wasUsable = this.usable
    this.usable = th !== undefined
    if (th === undefined) {
      this.remember(tS, sum, increased)
      const anomaly = this.anomaly.isRaised ? this.anomaly.step(tS, sum, false) : undefined
      return { idle: this.machine.isRaised ? this.machine.reset(tS) : undefined, reset, anomaly }
    }
    if (!wasUsable) {
      if (!reset) this.beginFromRecent(tS, th)
      // Needed only while thresholds are unusable (learned ones seldom become unusable again; if
      // they do, the ring fills again meanwhile).
      this.recentCount = 0
    }
    const idle = this.machine.step(tS, sum, increased, this.useOutput, th)
    const state = this.machine.state(this.useOutput, sum, th)
    const running =
      state === 'running' &&
      (this.useOutput ? tS - this.lastIncreaseS < th.afterS : true) &&
      (this.runAboveW() === null || sum >= this.runAboveW()!)
    const anomaly = this.anomaly.step(tS, sum, running)
    return { idle, reset, anomaly }
  }

  private changing(): void {
    const capture = this.capture!
    this.capture = undefined
    capture.beforeChange(this.captureIndex)
  }

  private remember(tS: number, powerW: number, rose: boolean): void {
    this.recentT[this.recentNext] = tS
    this.recentW[this.recentNext] = powerW
    this.recentRose[this.recentNext] = rose ? 1 : 0
    this.recentNext = (this.recentNext + 1) % RECENT_STEPS
    this.recentCount = Math.min(this.recentCount + 1, RECENT_STEPS)
  }

  /**
   * Thresholds just became usable (learned while the equipment may already be in an episode, e.g.
   * the first time its idle level shows): start the candidate episode where §7 starts it on the
   * recent steps — the first of the latest unbroken run in the band (band rule), or the last
   * output increase or power-on (output rule) — rather than at this step, at most afterS back.
   */
  private beginFromRecent(tS: number, th: Thresholds): void {
    let anchorS: number | undefined
    for (let k = 1; k <= this.recentCount; k++) {
      const i = (this.recentNext - k + RECENT_STEPS) % RECENT_STEPS
      const w = this.recentW[i]!
      if (this.useOutput) {
        if (w < th.offBelowW) break
        anchorS = this.recentT[i]!
        if (this.recentRose[i] === 1) break
      } else {
        if (w < th.offBelowW || w >= th.runAboveW) break
        anchorS = this.recentT[i]!
      }
    }
    // No earlier than afterS before now: the raise can come no sooner than this step, and an episode
    // dated further back would be raised later than one reading after its due time (the raise-delay
    // bar of DESIGN.md). Dated at most that much late, it is still the same episode.
    if (anchorS !== undefined) this.machine.begin(Math.max(anchorS, tS - th.afterS))
  }

  private runAboveW(): number | null {
    return this.node.spec.idle?.runAboveW ?? this.learner?.learned?.runAboveW ?? null
  }

  /** Thresholds the current rule can work with, or undefined (state `unknown`). */
  private usableThresholds(): Thresholds | undefined {
    const given = this.node.spec.idle
    if (given) return given
    const learned = this.learner?.learned
    if (!learned || learned.offBelowW === null) return undefined
    if (!this.useOutput && learned.runAboveW === null) return undefined
    // Without a learned runAboveW the output rule never looks at it.
    return {
      offBelowW: learned.offBelowW,
      runAboveW: learned.runAboveW ?? Number.POSITIVE_INFINITY,
      afterS: this.options.learnedAfterS,
    }
  }

  get state(): EquipmentState {
    const th = this.usableThresholds()
    if (th === undefined || Number.isNaN(this.powerW)) return 'unknown'
    return this.machine.state(this.useOutput, this.powerW, th)
  }

  get idleRaised(): boolean {
    return this.machine.isRaised
  }

  get anomalyRaised(): boolean {
    return this.anomaly.isRaised
  }

  get baseline() {
    return this.anomaly.baseline
  }

  thresholds(): ThresholdsInForce {
    const rule = Number.isNaN(this.powerW) && !this.useOutput ? null : this.useOutput ? 'output' : 'band'
    const given = this.node.spec.idle
    if (given) return { origin: 'given', ...given, rule }
    const learned = this.learner?.learned
    if (!learned) return { origin: 'none', offBelowW: null, runAboveW: null, afterS: null, rule }
    return {
      origin: 'learned',
      offBelowW: learned.offBelowW,
      runAboveW: learned.runAboveW,
      afterS: this.options.learnedAfterS,
      rule,
      levelsW: learned.levelsW,
    }
  }

  toJSON(): EquipmentJson {
    const list = (a: Float64Array) => Array.from(a, (x) => (Number.isFinite(x) ? x : null))
    const fin = (x: number) => (Number.isFinite(x) ? x : null)
    return {
      power: list(this.power),
      powerT: list(this.powerT),
      output: list(this.output),
      outputT: list(this.outputT),
      useOutput: this.useOutput,
      lastIncreaseS: fin(this.lastIncreaseS),
      lastStepS: fin(this.lastStepS),
      learner: this.learner?.toJSON() ?? null,
      machine: this.machine.toJSON(),
      anomaly: this.anomaly.toJSON(),
      recent: this.recentCount === 0 ? undefined : this.recentSteps(),
      usable: this.usable,
    }
  }

  /** The remembered steps, oldest first, as time, power, rose after one another. */
  private recentSteps(): Float64Array {
    const out = new Float64Array(3 * this.recentCount)
    for (let k = 0; k < this.recentCount; k++) {
      const i = (this.recentNext - this.recentCount + k + RECENT_STEPS) % RECENT_STEPS
      out[3 * k] = this.recentT[i]!
      out[3 * k + 1] = this.recentW[i]!
      out[3 * k + 2] = this.recentRose[i]!
    }
    return out
  }

  restore(json: EquipmentJson): void {
    const fill = (a: Float64Array, from: (number | null)[], none: number) => {
      for (let i = 0; i < a.length; i++) a[i] = from[i] ?? none
    }
    fill(this.power, json.power, Number.NaN)
    fill(this.powerT, json.powerT, Number.NEGATIVE_INFINITY)
    fill(this.output, json.output, Number.NaN)
    fill(this.outputT, json.outputT, Number.NEGATIVE_INFINITY)
    this.useOutput = json.useOutput
    this.lastIncreaseS = json.lastIncreaseS ?? Number.NEGATIVE_INFINITY
    this.lastStepS = json.lastStepS ?? Number.NEGATIVE_INFINITY
    if (json.learner && this.learner) this.learner.restore(json.learner)
    this.machine.restore(json.machine)
    this.anomaly.restore(json.anomaly)
    this.recentCount = 0
    this.recentNext = 0
    for (const [t, w, rose] of recentTriples(json.recent).slice(-RECENT_STEPS)) this.remember(t, w, rose === 1)
    // Older checkpoints: usable as the thresholds now say, so nothing is begun from an empty past.
    this.usable = json.usable ?? this.usableThresholds() !== undefined
    let sum = 0
    let any = false
    for (const p of this.power) {
      if (!Number.isNaN(p)) {
        sum += p
        any = true
      }
    }
    this.powerW = any ? sum : Number.NaN
  }
}

/** A checkpoint's remembered steps as triples, whichever form it holds them in. */
function recentTriples(recent: EquipmentJson['recent']): [number, number, number][] {
  if (recent === undefined) return []
  if (Array.isArray(recent)) return recent
  const flat = ArrayBuffer.isView(recent) ? recent : Object.values(recent)
  const out: [number, number, number][] = []
  for (let k = 0; k + 2 < flat.length; k += 3) out.push([flat[k]!, flat[k + 1]!, flat[k + 2]!])
  return out
}
