// 1-minute buckets of one site (CONTRACT.md §5 `buckets`, §6 `GET /api/v1/energy`, §7), in typed
// arrays: a ring of `length` minutes (default 25 h 16 min, so the last 24 h of the site clock and a
// whole 25-hour DST day are always held) shared by every scope of the site.
//
// Layout is slot-major (index = slot × scopes + scope): a minute's column is contiguous, so
// clearing a slot for a new minute, closing a minute and emitting it walk memory in order.
//
// What is stored, per minute:
// - equipment: energy and idle energy in whole mWh (Int32: exact integer sums, see spread.ts;
//   ±2^31 mWh per minute allows 12.8 MW of rated power at the 10× range limit), and the peak
//   power as a 16-bit log code (±0.018 %);
// - areas and the site: the same figures in Float64 (still whole numbers, so still exact);
//   lines are the sums of their equipment, computed when read (a line holds a handful);
// - the site: PV generation G and grid-meter import (mWh) for carbon (§7).
// peakW of a scope is the sum of its equipment's peaks ("sum of maxima"): an upper bound of the
// coincident peak, linear, so it can be kept incrementally and is the same in any order. An
// equipment's peak is its highest power reading in the minute (one power meter per equipment is
// the plant model's layout; with several, the highest single reading).

/** Log code of a power: code = round(ln(1 + W) × K), covering 0 to 1e10 W in 16 bits. */
const PEAK_K = 65_535 / Math.log1p(1e10)
/** Whole watts of every code, so decoding is a table look-up and sums stay integers. */
export const PEAK_WATTS = new Float64Array(65_536)
for (let c = 0; c < 65_536; c++) PEAK_WATTS[c] = Math.round(Math.expm1(c / PEAK_K))

/** Code of a power reading; 0 for zero or negative power (a peak is of consumption). */
export function peakCode(watts: number): number {
  if (!(watts > 0)) return 0
  return Math.min(65_535, Math.round(Math.log1p(watts) * PEAK_K))
}

export const DEFAULT_HISTORY_MINUTES = 1440 + 60 + 16

export class SiteBuckets {
  /** UTC minute held by each slot, -1 when empty. */
  readonly slotMinute: Float64Array
  readonly eqEnergy: Int32Array
  readonly eqIdle: Int32Array
  readonly eqPeak: Uint16Array
  readonly aggEnergy: Float64Array
  readonly aggIdle: Float64Array
  readonly aggPeak: Float64Array
  readonly pv: Float64Array
  readonly grid: Float64Array
  /** Newest minute held (the site clock's minute), -Infinity before any. */
  newest = Number.NEGATIVE_INFINITY

  constructor(
    readonly length: number,
    readonly nEq: number,
    readonly nAgg: number,
  ) {
    this.slotMinute = new Float64Array(length).fill(-1)
    this.eqEnergy = new Int32Array(length * nEq)
    this.eqIdle = new Int32Array(length * nEq)
    this.eqPeak = new Uint16Array(length * nEq)
    this.aggEnergy = new Float64Array(length * nAgg)
    this.aggIdle = new Float64Array(length * nAgg)
    this.aggPeak = new Float64Array(length * nAgg)
    this.pv = new Float64Array(length)
    this.grid = new Float64Array(length)
  }

  slot(minute: number): number {
    const r = minute % this.length
    return r < 0 ? r + this.length : r
  }

  /** Slot of `minute` when it is held, else -1. */
  slotOf(minute: number): number {
    const slot = this.slot(minute)
    return this.slotMinute[slot] === minute ? slot : -1
  }

  /** Oldest minute the ring can hold now. */
  oldest(): number {
    return this.newest - this.length + 1
  }

  /** Moves the ring forward to `minute`, clearing the slots it reuses (at most `length`). */
  advanceTo(minute: number): void {
    if (!(minute > this.newest)) return
    const from = Math.max(this.newest + 1, minute - this.length + 1)
    for (let m = from; m <= minute; m++) {
      const slot = this.slot(m)
      this.slotMinute[slot] = m
      this.eqEnergy.fill(0, slot * this.nEq, (slot + 1) * this.nEq)
      this.eqIdle.fill(0, slot * this.nEq, (slot + 1) * this.nEq)
      this.eqPeak.fill(0, slot * this.nEq, (slot + 1) * this.nEq)
      this.aggEnergy.fill(0, slot * this.nAgg, (slot + 1) * this.nAgg)
      this.aggIdle.fill(0, slot * this.nAgg, (slot + 1) * this.nAgg)
      this.aggPeak.fill(0, slot * this.nAgg, (slot + 1) * this.nAgg)
      this.pv[slot] = 0
      this.grid[slot] = 0
    }
    this.newest = minute
  }

  addEquipment(slot: number, eq: number, aggs: readonly number[], energy: number, idle: number): void {
    const i = slot * this.nEq + eq
    this.eqEnergy[i]! += energy
    this.eqIdle[i]! += idle
    const base = slot * this.nAgg
    for (let k = 0; k < aggs.length; k++) {
      this.aggEnergy[base + aggs[k]!]! += energy
      this.aggIdle[base + aggs[k]!]! += idle
    }
  }

  /** Raises the equipment's peak of the minute; true when it changed. */
  raisePeak(slot: number, eq: number, aggs: readonly number[], watts: number): boolean {
    const code = peakCode(watts)
    const i = slot * this.nEq + eq
    const old = this.eqPeak[i]!
    if (code <= old) return false
    this.eqPeak[i] = code
    const delta = PEAK_WATTS[code]! - PEAK_WATTS[old]!
    const base = slot * this.nAgg
    for (let k = 0; k < aggs.length; k++) this.aggPeak[base + aggs[k]!]! += delta
    return true
  }

  /** Bytes held in typed arrays (the bucket history's memory). */
  bytes(): number {
    return (
      this.slotMinute.byteLength +
      this.eqEnergy.byteLength +
      this.eqIdle.byteLength +
      this.eqPeak.byteLength +
      this.aggEnergy.byteLength +
      this.aggIdle.byteLength +
      this.aggPeak.byteLength +
      this.pv.byteLength +
      this.grid.byteLength
    )
  }
}
