// A device's energy as CONTRACT.md §7 defines it, kept incrementally as readings arrive in any
// order:
// - counter (`energy`) intervals between consecutive readings by time: the difference, or the new
//   value after a reset (a decrease), spread evenly over the interval;
// - power (`power`) by the trapezoid rule between consecutive readings at most 900 s apart, only
//   where two consecutive counter readings do not cover: before the first and after the latest
//   counter reading. Within its interval the trapezoid's energy is spread evenly too, like a
//   counter step, so a counter reading landing inside it splits it by the same rule.
//
// Every insertion changes the contribution only inside a window around the new reading; the old
// contribution of that window is removed and the new one added (spread.ts makes the two exact).

import { ReadingSeries } from './series.ts'
import type { Span } from './spread.ts'
import { type MinuteScratch, spreadPart } from './spread.ts'

export const DEFAULT_MAX_POWER_GAP_S = 900

export type DeviceSink = { kind: 'equipment'; eq: number } | { kind: 'pv' } | { kind: 'grid' }

export class DeviceEnergy {
  readonly energy = new ReadingSeries(true)
  readonly power = new ReadingSeries(true)
  /** Other measurements: ordering and dedup only (§2). */
  readonly others = new Map<string, ReadingSeries>()

  constructor(
    readonly deviceId: string,
    readonly sink: DeviceSink,
  ) {}

  series(name: string): ReadingSeries {
    if (name === 'energy') return this.energy
    if (name === 'power') return this.power
    let s = this.others.get(name)
    if (!s) {
      // `output` keeps its values: it is a counter (units produced, §2); the rest only order and dedup.
      s = new ReadingSeries(name === 'output')
      this.others.set(name, s)
    }
    return s
  }

  /**
   * Time from which this device's retained readings describe its energy exactly; before it, the
   * readings that bounded the intervals were evicted.
   */
  exactFrom(): number {
    let from = Number.NEGATIVE_INFINITY
    if (this.energy.evicted && this.energy.len > 0) from = this.energy.time(0)
    if (this.power.evicted && this.power.len > 0) from = Math.max(from, this.power.time(0))
    return from
  }
}

/** Counter coverage [c0, c1] (§7); empty (c0 > c1) with fewer than two readings. */
export interface Coverage {
  c0: number
  c1: number
}

function coverageOf(first: number, last: number): Coverage {
  return last > first ? { c0: first, c1: last } : { c0: 1, c1: 0 }
}

/** Energy of a counter step: the difference, or the new value after a reset (§2, §7). */
export function counterIncrement(previous: number, next: number): number {
  return next >= previous ? next - previous : next
}

export class EnergyContext {
  maxPowerGapS = DEFAULT_MAX_POWER_GAP_S
  spans: readonly Span[] | undefined = undefined

  constructor(readonly out: MinuteScratch) {}

  /** ± the counter interval between retained energy readings i and j (restricted to [x, y]). */
  counterInterval(dev: DeviceEnergy, i: number, j: number, sign: number, x = -Infinity, y = Infinity): void {
    const s = dev.energy
    const a = s.time(i)
    const b = s.time(j)
    const milliWh = counterIncrement(s.value(i), s.value(j)) * 1000
    spreadPart(this.out, a, b, milliWh, Math.max(a, x), Math.min(b, y), sign, this.spans)
  }

  /** ± the power segment between retained power readings i and j, over [x, y] minus `cov`. */
  powerSegment(dev: DeviceEnergy, i: number, j: number, cov: Coverage, sign: number, x = -Infinity, y = Infinity) {
    const s = dev.power
    const a = s.time(i)
    const b = s.time(j)
    if (b - a > this.maxPowerGapS) return
    const milliWh = ((s.value(i) + s.value(j)) / 2) * ((b - a) / 3600) * 1000
    const lo = Math.max(a, x)
    const hi = Math.min(b, y)
    if (!(hi > lo)) return
    if (cov.c0 > cov.c1) {
      spreadPart(this.out, a, b, milliWh, lo, hi, sign, this.spans)
      return
    }
    if (lo < cov.c0) spreadPart(this.out, a, b, milliWh, lo, Math.min(hi, cov.c0), sign, this.spans)
    if (hi > cov.c1) spreadPart(this.out, a, b, milliWh, Math.max(lo, cov.c1), hi, sign, this.spans)
  }

  /** ± the power contribution over [x, y] outside `cov`. */
  powerOver(dev: DeviceEnergy, x: number, y: number, cov: Coverage, sign: number): void {
    const s = dev.power
    if (s.len < 2 || !(y > x)) return
    // First segment that can reach into [x, y]: the one starting at the last reading ≤ x.
    let i = Math.max(0, s.lowerBound(x) - 1)
    for (; i + 1 < s.len && s.time(i) < y; i++) this.powerSegment(dev, i, i + 1, cov, sign, x, y)
  }

  /** ± the counter contribution over [x, y]. */
  countersOver(dev: DeviceEnergy, x: number, y: number, sign: number): void {
    const s = dev.energy
    if (s.len < 2 || !(y > x)) return
    let i = Math.max(0, s.lowerBound(x) - 1)
    for (; i + 1 < s.len && s.time(i) < y; i++) this.counterInterval(dev, i, i + 1, sign, x, y)
  }

  /** The device's whole energy over [x, y] (for idle spans and energyBetween). */
  energyOver(dev: DeviceEnergy, x: number, y: number, sign: number): void {
    this.countersOver(dev, x, y, sign)
    this.powerOver(dev, x, y, coverageOf(dev.energy.firstEver, dev.energy.lastEver), sign)
  }

  /** Accounts a power reading just inserted at `pos` (§7: trapezoids, 900 s limit, outside coverage). */
  powerInserted(dev: DeviceEnergy, pos: number): void {
    const s = dev.power
    const cov = coverageOf(dev.energy.firstEver, dev.energy.lastEver)
    const hasPrev = pos > 0
    const hasNext = pos + 1 < s.len
    if (hasPrev && hasNext) {
      // The segment it splits, still computed from the two neighbours.
      const a = s.time(pos - 1)
      const b = s.time(pos + 1)
      if (b - a <= this.maxPowerGapS) {
        const milliWh = ((s.value(pos - 1) + s.value(pos + 1)) / 2) * ((b - a) / 3600) * 1000
        this.subtractOutside(a, b, milliWh, cov)
      }
    }
    if (hasPrev) this.powerSegment(dev, pos - 1, pos, cov, 1)
    if (hasNext) this.powerSegment(dev, pos, pos + 1, cov, 1)
  }

  private subtractOutside(a: number, b: number, milliWh: number, cov: Coverage): void {
    if (cov.c0 > cov.c1) {
      spreadPart(this.out, a, b, milliWh, a, b, -1, this.spans)
      return
    }
    if (a < cov.c0) spreadPart(this.out, a, b, milliWh, a, Math.min(b, cov.c0), -1, this.spans)
    if (b > cov.c1) spreadPart(this.out, a, b, milliWh, Math.max(a, cov.c1), b, -1, this.spans)
  }

  /**
   * Accounts an energy reading just inserted at `pos`; `before` is the coverage before it. Only
   * the interval it splits changes, or, at either end, the stretch that passes from power to
   * counter coverage.
   */
  energyInserted(dev: DeviceEnergy, pos: number, before: Coverage): void {
    const s = dev.energy
    const hasPrev = pos > 0
    const hasNext = pos + 1 < s.len
    const after = coverageOf(s.firstEver, s.lastEver)
    if (hasPrev && hasNext) {
      const a = s.time(pos - 1)
      const b = s.time(pos + 1)
      const milliWh = counterIncrement(s.value(pos - 1), s.value(pos + 1)) * 1000
      spreadPart(this.out, a, b, milliWh, a, b, -1, this.spans)
      this.counterInterval(dev, pos - 1, pos, 1)
      this.counterInterval(dev, pos, pos + 1, 1)
      return
    }
    if (hasNext) {
      const x = s.time(pos)
      const y = s.time(pos + 1)
      this.powerOver(dev, x, y, before, -1)
      this.powerOver(dev, x, y, after, 1)
      this.counterInterval(dev, pos, pos + 1, 1)
    } else if (hasPrev) {
      const x = s.time(pos - 1)
      const y = s.time(pos)
      this.powerOver(dev, x, y, before, -1)
      this.powerOver(dev, x, y, after, 1)
      this.counterInterval(dev, pos - 1, pos, 1)
    }
  }
}

export function coverageNow(dev: DeviceEnergy): Coverage {
  return coverageOf(dev.energy.firstEver, dev.energy.lastEver)
}
