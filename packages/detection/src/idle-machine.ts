// Idle episodes of one equipment, exactly as CONTRACT.md §7 defines them, on the equipment's readings
// in its own time order (one step per distinct reading time, with the latest power of its devices and
// whether an output counter rose at that time). Same rules as the simulator's reference detector
// (simulators/fleet/src/model/idle.ts), plus exit-side hysteresis:
//
// - Output rule: `off` below offBelowW. Idle once powered for afterS without an output increase; the
//   episode starts at the last increase or at power-on (the first powered reading after an unpowered
//   one, or the first reading at all), is raised at the first reading still showing no increase with
//   time ≥ start + afterS, and ends at the next increase or the first unpowered reading.
// - Band rule: idle while offBelowW ≤ power < runAboveW; starts at the first such reading, raised at
//   the first reading still in the band with time ≥ start + afterS, ends at the first reading outside.
//
// Hysteresis (§7 allows widening by up to 5 % of runAboveW) applies to leaving a state only: power-on
// and entering the band use the exact thresholds, so a raise is never later than the exact rule's;
// once powered (or in the band) the power must cross the threshold by the margin to end it, so noise
// around a threshold does not end an episode and start a new one. Nothing is ever suppressed: every
// episode the (widened) rule sees is raised.

export interface Thresholds {
  offBelowW: number
  runAboveW: number
  afterS: number
}

export interface IdleMachineJson {
  seen: boolean
  on: boolean
  anchorS: number
  raised: boolean
}

export type IdleTransition =
  | { type: 'raise'; startS: number; atS: number }
  | { type: 'clear'; startS: number; atS: number }
  | undefined

export class IdleMachine {
  private seen = false
  /** Output rule: powered. Band rule: inside the idle band (an episode candidate). */
  private on = false
  /** Start of the current candidate episode (s). */
  private anchorS = 0
  private raised = false

  constructor(
    private readonly hysteresisShare: number,
    private readonly hysteresisOffShare: number,
  ) {}

  get isRaised(): boolean {
    return this.raised
  }

  /** Start of the raised episode (s); meaningful while isRaised. */
  get startS(): number {
    return this.anchorS
  }

  /** `off`, `idle` (an episode is raised) or `running`, after the latest step. */
  state(useOutput: boolean, powerW: number, th: Thresholds): 'off' | 'idle' | 'running' {
    if (this.raised) return 'idle'
    if (useOutput) return this.on ? 'running' : 'off'
    return powerW < th.offBelowW ? 'off' : 'running'
  }

  /** One step at time tS. `outputIncreased` is ignored by the band rule. */
  step(tS: number, powerW: number, outputIncreased: boolean, useOutput: boolean, th: Thresholds): IdleTransition {
    const hRun = this.hysteresisShare * th.runAboveW
    const hOff = Math.min(hRun, this.hysteresisOffShare * th.offBelowW)
    if (useOutput) {
      const powered = this.on && this.seen ? powerW >= th.offBelowW - hOff : powerW >= th.offBelowW
      if (!powered) {
        const out = this.close(tS)
        this.on = false
        this.seen = true
        return out
      }
      if (!this.on || !this.seen) {
        // Power-on (or the first reading at all): a candidate episode starts here.
        this.on = true
        this.seen = true
        this.anchorS = tS
        return undefined
      }
      if (outputIncreased) {
        const out = this.close(tS)
        this.anchorS = tS
        return out
      }
      return this.maybeRaise(tS, th.afterS)
    }
    this.seen = true
    const inBand = this.on
      ? powerW >= th.offBelowW - hOff && powerW < th.runAboveW + hRun
      : powerW >= th.offBelowW && powerW < th.runAboveW
    if (inBand) {
      if (!this.on) {
        this.on = true
        this.anchorS = tS
        return undefined
      }
      return this.maybeRaise(tS, th.afterS)
    }
    const out = this.close(tS)
    this.on = false
    return out
  }

  /**
   * Thresholds just became usable and the readings before them already met the condition since
   * anchorS (found by the caller in its recent readings): the candidate episode starts there, as
   * §7 would have started it, instead of at the next reading.
   */
  begin(anchorS: number): void {
    if (this.raised) return
    this.seen = true
    this.on = true
    this.anchorS = anchorS
  }

  /** Ends any episode at tS and forgets the candidate (thresholds or rule changed). */
  reset(tS: number): IdleTransition {
    const out = this.close(tS)
    this.seen = false
    this.on = false
    return out
  }

  private maybeRaise(tS: number, afterS: number): IdleTransition {
    if (this.raised || tS - this.anchorS < afterS) return undefined
    this.raised = true
    return { type: 'raise', startS: this.anchorS, atS: tS }
  }

  private close(tS: number): IdleTransition {
    if (!this.raised) return undefined
    this.raised = false
    return { type: 'clear', startS: this.anchorS, atS: tS }
  }

  toJSON(): IdleMachineJson {
    return { seen: this.seen, on: this.on, anchorS: this.anchorS, raised: this.raised }
  }

  restore(json: IdleMachineJson): void {
    this.seen = json.seen
    this.on = json.on
    this.anchorS = json.anchorS
    this.raised = json.raised
  }
}
