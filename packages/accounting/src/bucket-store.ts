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
//
// Persistence (issue 13): the checkpoint does not carry the ring. Each minute's *column* (its
// equipment energy, idle and peak codes, PV and grid) is written to the processor's state store
// when it changed since the last checkpoint (`changed`, `takeColumns`); the aggregates are sums of
// the equipment and are rebuilt when a column is loaded (`loadColumn`), exactly (whole numbers).
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
  /** Minutes held whose column changed since the last takeColumns(). */
  readonly changed = new Set<number>()
  /** Columns of changed minutes that the ring moved past before a checkpoint took them. */
  readonly evicted = new Map<number, Uint8Array>()
  /** Bytes of one column (columnBytes(nEq)). */
  readonly columnBytes: number

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
    this.columnBytes = columnBytes(nEq)
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
      const old = this.slotMinute[slot]!
      // A changed column not yet checkpointed keeps its bytes until the next checkpoint takes them.
      if (this.changed.delete(old)) this.evicted.set(old, this.column(slot))
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
    this.changed.add(this.slotMinute[slot]!)
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
    this.changed.add(this.slotMinute[slot]!)
    this.eqPeak[i] = code
    const delta = PEAK_WATTS[code]! - PEAK_WATTS[old]!
    const base = slot * this.nAgg
    for (let k = 0; k < aggs.length; k++) this.aggPeak[base + aggs[k]!]! += delta
    return true
  }

  /** Adds site PV generation (mWh) to a minute. */
  addPv(slot: number, mWh: number): void {
    this.changed.add(this.slotMinute[slot]!)
    this.pv[slot]! += mWh
  }

  /** Adds grid-meter import (mWh) to a minute. */
  addGrid(slot: number, mWh: number): void {
    this.changed.add(this.slotMinute[slot]!)
    this.grid[slot]! += mWh
  }

  /**
   * The column of a slot as bytes (layout in columnBytes); an empty array when the minute holds
   * nothing, which loads back as zeros.
   */
  column(slot: number): Uint8Array {
    const n = this.nEq
    if (this.pv[slot] === 0 && this.grid[slot] === 0 && isZero(this.eqEnergy, this.eqIdle, this.eqPeak, slot * n, n)) {
      return EMPTY
    }
    const out = new Uint8Array(this.columnBytes)
    const f = new Float64Array(out.buffer, 0, 2)
    f[0] = this.pv[slot]!
    f[1] = this.grid[slot]!
    new Int32Array(out.buffer, 16, n).set(this.eqEnergy.subarray(slot * n, (slot + 1) * n))
    new Int32Array(out.buffer, 16 + 4 * n, n).set(this.eqIdle.subarray(slot * n, (slot + 1) * n))
    new Uint16Array(out.buffer, 16 + 8 * n, n).set(this.eqPeak.subarray(slot * n, (slot + 1) * n))
    return out
  }

  /**
   * The columns that changed since the last call, as [minute, bytes] (the ring's and those it moved
   * past), oldest first; `all` takes every held minute (after a failed checkpoint write).
   */
  takeColumns(all = false): [number, Uint8Array][] {
    const out: [number, Uint8Array][] = [...this.evicted]
    this.evicted.clear()
    if (all && this.newest > Number.NEGATIVE_INFINITY) {
      for (let m = this.oldest(); m <= this.newest; m++) out.push([m, this.column(this.slot(m))])
    } else {
      for (const m of this.changed) out.push([m, this.column(this.slot(m))])
    }
    this.changed.clear()
    return out.sort((a, b) => a[0] - b[0])
  }

  /**
   * Sets a held minute's column from bytes written by column() (empty: zeros) and rebuilds the
   * aggregate rows from the equipment (`aggregatesOf[eq]`, the rows each equipment adds to).
   */
  loadColumn(slot: number, bytes: Uint8Array, aggregatesOf: readonly (readonly number[])[]): void {
    const n = this.nEq
    const e = slot * n
    const a = slot * this.nAgg
    this.aggEnergy.fill(0, a, a + this.nAgg)
    this.aggIdle.fill(0, a, a + this.nAgg)
    this.aggPeak.fill(0, a, a + this.nAgg)
    if (bytes.byteLength === 0) {
      this.eqEnergy.fill(0, e, e + n)
      this.eqIdle.fill(0, e, e + n)
      this.eqPeak.fill(0, e, e + n)
      this.pv[slot] = 0
      this.grid[slot] = 0
      return
    }
    if (bytes.byteLength !== this.columnBytes) {
      throw new RangeError(`a column of ${bytes.byteLength} bytes does not fit ${n} equipment`)
    }
    // Copied byte-wise: a stored value need not be aligned for a typed-array view.
    const view = (target: Float64Array | Int32Array | Uint16Array, at: number, width: number) =>
      new Uint8Array(target.buffer, target.byteOffset + at * width, n * width)
    const f = new Float64Array(2)
    new Uint8Array(f.buffer).set(bytes.subarray(0, 16))
    this.pv[slot] = f[0]!
    this.grid[slot] = f[1]!
    view(this.eqEnergy, e, 4).set(bytes.subarray(16, 16 + 4 * n))
    view(this.eqIdle, e, 4).set(bytes.subarray(16 + 4 * n, 16 + 8 * n))
    view(this.eqPeak, e, 2).set(bytes.subarray(16 + 8 * n, 16 + 10 * n))
    for (let eq = 0; eq < n; eq++) {
      const aggs = aggregatesOf[eq]!
      const energy = this.eqEnergy[e + eq]!
      const idle = this.eqIdle[e + eq]!
      const peak = PEAK_WATTS[this.eqPeak[e + eq]!]!
      if (energy === 0 && idle === 0 && peak === 0) continue
      for (let k = 0; k < aggs.length; k++) {
        this.aggEnergy[a + aggs[k]!]! += energy
        this.aggIdle[a + aggs[k]!]! += idle
        this.aggPeak[a + aggs[k]!]! += peak
      }
    }
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

/**
 * Bytes of one minute's column of `nEq` equipment: PV and grid (2 × float64), then equipment
 * energy and idle (int32 each), then peak codes (uint16), in the machine's byte order.
 */
export function columnBytes(nEq: number): number {
  return 16 + 10 * nEq
}

const EMPTY = new Uint8Array(0)

function isZero(a: Int32Array, b: Int32Array, c: Uint16Array, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if (a[i] !== 0 || b[i] !== 0 || c[i] !== 0) return false
  return true
}
