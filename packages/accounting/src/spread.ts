// Energy spreading (CONTRACT.md §7): an interval's energy is spread evenly over its time and split
// across 1-minute buckets in proportion.
//
// Amounts are whole milli-watt-hours. Each minute's piece is the difference of the rounded
// cumulative energy at its two ends, cum(x) = round(E × (x − a) / (b − a)), so
// - the pieces of an interval add up to round(E) exactly,
// - pieces of any sub-parts of one interval telescope to the pieces of the whole (a late reading
//   that re-splits an interval, or an idle span boundary, removes exactly what was added), and
// - bucket sums are sums of integers, exact in any order: the same readings give bit-identical
//   buckets whatever the interleaving of devices (replay at any speed, §7 "Event time").

/** An idle span of an equipment, seconds; `end` is +Infinity while open (§7 idle). */
export interface Span {
  start: number
  end: number
}

/** Net per-minute changes of one sink collected during one operation, then applied at once. */
export class MinuteScratch {
  base = 0
  lo = Number.POSITIVE_INFINITY
  hi = Number.NEGATIVE_INFINITY
  energy = new Float64Array(64)
  idle = new Float64Array(64)

  add(minute: number, energy: number, idle: number): void {
    if (this.lo > this.hi) {
      this.base = minute
      this.lo = minute
      this.hi = minute
    } else if (minute < this.lo || minute > this.hi) {
      this.extend(minute)
    }
    const i = minute - this.base
    this.energy[i]! += energy
    this.idle[i]! += idle
  }

  get empty(): boolean {
    return this.lo > this.hi
  }

  clear(): void {
    if (this.lo <= this.hi) {
      this.energy.fill(0, this.lo - this.base, this.hi - this.base + 1)
      this.idle.fill(0, this.lo - this.base, this.hi - this.base + 1)
    }
    this.lo = Number.POSITIVE_INFINITY
    this.hi = Number.NEGATIVE_INFINITY
  }

  private extend(minute: number): void {
    const lo = Math.min(this.lo, minute)
    const hi = Math.max(this.hi, minute)
    const need = hi - lo + 1
    if (lo < this.base || hi - this.base >= this.energy.length) {
      const size = Math.max(need * 2, this.energy.length)
      const energy = new Float64Array(size)
      const idle = new Float64Array(size)
      energy.set(this.energy.subarray(this.lo - this.base, this.hi - this.base + 1), this.lo - lo)
      idle.set(this.idle.subarray(this.lo - this.base, this.hi - this.base + 1), this.lo - lo)
      this.energy = energy
      this.idle = idle
      this.base = lo
    }
    this.lo = lo
    this.hi = hi
  }
}

/** Rounded cumulative energy (mWh) of segment [a, b] carrying `milliWh`, at time x. */
function cum(a: number, length: number, milliWh: number, x: number): number {
  return Math.round((milliWh * (x - a)) / length)
}

/**
 * Adds `sign` × the part [x, y] of segment [a, b] (which carries `milliWh` spread evenly) to the
 * scratch, minute by minute; with `spans`, also the energy that falls within them as idle energy
 * (exact under the even-spreading model, §7 idle / wastedWh).
 */
export function spreadPart(
  out: MinuteScratch,
  a: number,
  b: number,
  milliWh: number,
  x: number,
  y: number,
  sign: number,
  spans: readonly Span[] | undefined,
): void {
  if (!(y > x) || !(b > a)) return
  const length = b - a
  // Only the spans that overlap [x, y] are looked at: an equipment keeps its spans for the whole
  // ring (25 h), so walking all of them for every minute made a reading's cost grow through the day.
  let first = 0
  let last = 0
  if (spans !== undefined) {
    first = firstEndingAfter(spans, x)
    last = first
    while (last < spans.length && spans[last]!.start < y) last++
  }
  let p0 = x
  let c0 = cum(a, length, milliWh, x)
  while (p0 < y) {
    const minute = Math.floor(p0 / 60)
    const p1 = Math.min(y, (minute + 1) * 60)
    const c1 = cum(a, length, milliWh, p1)
    let idle = 0
    if (spans !== undefined) {
      for (let i = first; i < last; i++) {
        const span = spans[i]!
        const q0 = Math.max(span.start, p0)
        const q1 = Math.min(span.end, p1)
        if (q1 > q0) idle += cum(a, length, milliWh, q1) - cum(a, length, milliWh, q0)
      }
    }
    out.add(minute, sign * (c1 - c0), sign * idle)
    p0 = p1
    c0 = c1
  }
}

/**
 * Index of the first span that ends after `t` (spans.length when none). Spans are sorted by start
 * and do not overlap (an equipment is in one idle episode at a time; overlapping spans would count
 * their energy as idle twice), so their ends are sorted too.
 */
export function firstEndingAfter(spans: readonly Span[], t: number): number {
  let lo = 0
  let hi = spans.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (spans[mid]!.end > t) hi = mid
    else lo = mid + 1
  }
  return lo
}
