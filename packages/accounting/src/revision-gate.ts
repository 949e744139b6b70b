// Revisions that follow material change (CONTRACT.md §5 `buckets`, v1.1; issue 14).
//
// A bucket already sent is sent again only for the scopes whose figures moved by more than
// 0.1 Wh / 0.1 g (or 1e-6 of the figure, whichever is larger), at most once a second of the site
// clock per bucket; smaller changes ride on the bucket's next revision, and on a last one once the
// site clock has passed the bucket's end by 10 × latenessS. This module holds the bookkeeping; the
// engine (accounting.ts) computes the figures.
//
// What is remembered is not the figures last sent (27,636 scopes × ~1,650 buckets in the ring
// would be gigabytes) but, per bucket and scope, the *unsent difference*: exact figures now minus
// the figures last sent. It is kept only where it is not zero, so a scope that no change touched
// costs nothing, and it is exact arithmetic on the changes (energy in whole mWh, CO2 as energy ×
// factor). A scope is sent when its difference passes the threshold (checked exactly against the
// figure itself), or at the bucket's last revision if anything is unsent; sending clears it.
//
// Where the differences come from: each change to a minute already sent is logged per minute
// (MinuteChange: per equipment its energy, idle and output added and its peak code before; the
// site's PV and grid added). At the next take the engine turns a minute's log into each scope's
// difference: the ancestors of the equipment touched, and — when the minute's carbon factors moved
// (the site's consumption, PV or grid changed: CO2 is shared as energy × I/E, §7) — every scope
// with energy in the minute, by its energy × the change of factor.
//
// Why the site clock and not the wall clock for "once a second": the figures sent must not depend
// on how fast a recording is replayed (§7 event time); the replay-determinism tests compare 1× with
// maximum speed.
//
// Memory, per scope: one record of 8 numbers per bucket with an unsent difference (a record only
// exists between a change and its scope's next send; after a bucket's last revision, only while a
// later change stays under the threshold), plus one small object per bucket with a change. The
// minute logs live until the next take.

import type { BucketStep } from './calendar.ts'

/** Figures compared, in this order, in a difference record. */
export const ENERGY = 0
export const IDLE = 1
export const CO2 = 2
export const CO2_MARKET = 3
export const PV = 4
export const IDLE_CO2 = 5
export const OUTPUT = 6
export const PEAK = 7
export const FIGURE_COUNT = 8
/**
 * Units of a difference record per figure: energy, idle and output in thousandths (whole mWh and
 * milli-units, exact integers, so the figures as sent are recovered exactly), the rest as sent.
 */
export const RECORD_SCALE: readonly number[] = [1000, 1000, 1, 1, 1, 1, 1000, 1]

/** A change is material above this, in each figure's own unit (Wh, g, W, units)… */
export const ABSOLUTE_THRESHOLD = 0.1
/** …or above this fraction of the figure, whichever is larger. */
export const RELATIVE_THRESHOLD = 1e-6
/** The last revision is due once the site clock passed the bucket's end by this × latenessS. */
export const FINAL_AFTER_LATENESS = 10
/** Seconds of the site clock between two revisions of a bucket. */
export const MIN_INTERVAL_S = 1

/** One equipment's change within a minute since the minute's buckets were last looked at. */
export interface EquipmentChange {
  /** mWh added. */
  energy: number
  idle: number
  /** Milli-units added (output counters). */
  output: number
  /** The peak code before the first raise, -1 when the peak did not change. */
  peakBefore: number
}

/** The changes to one minute already sent, since the last take. */
export class MinuteChange {
  readonly equipment = new Map<number, EquipmentChange>()
  /** mWh of PV generation and grid import added. */
  pv = 0
  grid = 0

  of(eq: number): EquipmentChange {
    let change = this.equipment.get(eq)
    if (change === undefined) {
      change = { energy: 0, idle: 0, output: 0, peakBefore: -1 }
      this.equipment.set(eq, change)
    }
    return change
  }

  toJSON(): SavedMinuteChange {
    return [
      this.pv,
      this.grid,
      [...this.equipment].map(([eq, c]) => [eq, c.energy, c.idle, c.output, c.peakBefore] as const),
    ] as SavedMinuteChange
  }

  static from(saved: SavedMinuteChange): MinuteChange {
    const change = new MinuteChange()
    change.pv = saved[0]
    change.grid = saved[1]
    for (const [eq, energy, idle, output, peakBefore] of saved[2]) {
      change.equipment.set(eq, { energy, idle, output, peakBefore })
    }
    return change
  }
}

export type SavedMinuteChange = [number, number, [number, number, number, number, number][]]

/** A bucket sent at least once that has unsent differences or was sent lately. */
export class BucketGate {
  /**
   * Per scope position: exact figures now minus the figures last sent (FIGURE_COUNT numbers), then
   * each figure's threshold in the same units (0.1 until a check found the figure as sent larger:
   * then 1e-6 of it, so that a big scope is not checked again at every take until it may pass).
   */
  readonly unsent = new Map<number, Float64Array>()
  /** Scopes whose difference passed the absolute threshold: to check exactly and send. */
  readonly candidates = new Set<number>()
  /** Site clock (s) of the last revision sent. */
  lastSentS = Number.NEGATIVE_INFINITY
  /**
   * The last revision (10 × latenessS after the end) is behind it: from now on only material
   * changes are sent. True from the start for a bucket first changed after that time.
   */
  finalDone: boolean
  /** Send every scope at the next take, whatever changed (after a restore, or a store conflict). */
  whole = false

  constructor(
    readonly step: BucketStep,
    readonly start: number,
    readonly end: number,
    readonly finalAtS: number,
    clockS: number,
  ) {
    this.finalDone = clockS >= finalAtS
  }

  /** Adds a difference for a scope; marks it a candidate when it may be material. */
  add(position: number, delta: ArrayLike<number>): void {
    let record = this.unsent.get(position)
    if (record === undefined) {
      record = new Float64Array(2 * FIGURE_COUNT)
      for (let i = 0; i < FIGURE_COUNT; i++) record[FIGURE_COUNT + i] = ABSOLUTE_THRESHOLD * RECORD_SCALE[i]!
      this.unsent.set(position, record)
    }
    let over = false
    for (let i = 0; i < FIGURE_COUNT; i++) {
      record[i]! += delta[i]!
      if (Math.abs(record[i]!) > record[FIGURE_COUNT + i]!) over = true
    }
    if (over) this.candidates.add(position)
  }

  /** Whether the site clock allows a revision now. */
  mayRevise(clockS: number): boolean {
    return clockS >= this.lastSentS + MIN_INTERVAL_S
  }

  /** The last revision is due: anything unsent goes out now. */
  finalDue(clockS: number): boolean {
    return !this.finalDone && clockS >= this.finalAtS
  }

  /** Nothing unsent, nothing to wait for: the gate can go. */
  idle(clockS: number): boolean {
    return (
      this.unsent.size === 0 && !this.whole && (this.finalDone || clockS >= this.finalAtS) && this.mayRevise(clockS)
    )
  }
}

/**
 * Whether a scope's difference is material: any figure moved by more than 0.1 (its unit) or 1e-6
 * of the figure as last sent, whichever is larger. `exact` is the figures now, in their units.
 */
export function material(unsent: Float64Array, exact: ArrayLike<number>): boolean {
  let any = false
  for (let i = 0; i < FIGURE_COUNT; i++) {
    const moved = unsent[i]! / RECORD_SCALE[i]!
    const sent = exact[i]! - moved
    const threshold = Math.max(ABSOLUTE_THRESHOLD, RELATIVE_THRESHOLD * Math.abs(sent))
    // The figure as sent stays until the next send: so does its threshold (see BucketGate.unsent).
    unsent[FIGURE_COUNT + i] = threshold * RECORD_SCALE[i]!
    if (Math.abs(moved) > threshold) any = true
  }
  return any
}

/**
 * A figure as last sent, from the figure now and the record's difference: exact for the figures
 * kept in thousandths (energy, idle, output: whole numbers of them) and the peak (whole watts);
 * for CO2 and PV energy within float rounding (about 1e-15 of the figure) of the one sent.
 */
export function asSent(exact: number, unsent: Float64Array, i: number): number {
  const scale = RECORD_SCALE[i]!
  if (scale === 1) return exact - unsent[i]!
  return (Math.round(exact * scale) - unsent[i]!) / scale
}

/** Whether anything of a difference is unsent. */
export function anyUnsent(unsent: Float64Array): boolean {
  for (let i = 0; i < FIGURE_COUNT; i++) if (unsent[i] !== 0) return true
  return false
}

/** The revision bookkeeping of one site: minute logs until the next take, buckets with unsent differences. */
export class RevisionGate {
  /** Changes to minutes already sent, since the last take, by minute. */
  readonly changes = new Map<number, MinuteChange>()
  /** Buckets with unsent differences or revised lately, per step, by start minute. */
  readonly buckets: Record<BucketStep, Map<number, BucketGate>> = {
    '1m': new Map(),
    '15m': new Map(),
    '1h': new Map(),
    '1d': new Map(),
  }

  change(minute: number): MinuteChange {
    let change = this.changes.get(minute)
    if (change === undefined) {
      change = new MinuteChange()
      this.changes.set(minute, change)
    }
    return change
  }

  bucket(step: BucketStep, start: number, end: number, finalAtS: number, clockS: number): BucketGate {
    const map = this.buckets[step]
    let gate = map.get(start)
    if (gate === undefined) {
      gate = new BucketGate(step, start, end, finalAtS, clockS)
      map.set(start, gate)
    }
    return gate
  }

  /** Whether a bucket holding a minute before `minute` still has something to send. */
  holdsBefore(minute: number): boolean {
    for (const map of Object.values(this.buckets)) {
      for (const gate of map.values()) if (gate.start < minute && (gate.unsent.size > 0 || gate.whole)) return true
    }
    return false
  }

  /** Something could be sent at this clock: a material difference, a due last revision, a whole bucket. */
  pending(clockS: number): boolean {
    if (this.changes.size > 0) return true
    for (const map of Object.values(this.buckets)) {
      for (const gate of map.values()) {
        if (gate.whole) return true
        if (gate.unsent.size > 0 && (gate.candidates.size > 0 || gate.finalDue(clockS))) return true
      }
    }
    return false
  }

  /**
   * What a checkpoint keeps: the minute logs, and the buckets with unsent differences as
   * [step, start, finalDone]. The differences themselves are not kept (they can be every scope of
   * the site): after a restore such a bucket is sent whole, exact, above the revisions sent.
   */
  save(): SavedGate {
    const buckets: [BucketStep, number, boolean][] = []
    for (const map of Object.values(this.buckets)) {
      for (const gate of map.values()) {
        if (gate.unsent.size > 0 || gate.whole) buckets.push([gate.step, gate.start, gate.finalDone])
      }
    }
    return { changes: [...this.changes].map(([m, c]) => [m, c.toJSON()]), buckets }
  }
}

export interface SavedGate {
  changes: [number, SavedMinuteChange][]
  buckets: [BucketStep, number, boolean][]
}
