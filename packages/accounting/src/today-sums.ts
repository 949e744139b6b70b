// Today's figures of `live` (CONTRACT.md §5) over the closed minutes of the local day, kept so that
// the cost of an update does not depend on the time of day (issue 14).
//
// A closed minute changes all the time: a late reading re-splits an interval, a meter's reading
// after a gap spreads over hours, and a PV or grid reading moves the CO2 of every scope of the
// site (carbon is shared out as energy × I / E per minute, §7). Dropping a scope's whole day on any
// such change made its next live() sum every minute since local midnight again — 1,380 minutes at
// 23:00 against 60 at 01:00.
//
// Instead:
// - per site, `ClosedMinuteChanges` logs which closed minute each change touched, the last
//   LOG_LENGTH changes in a ring, and compacts older ones to, per UTC quarter hour of the ring,
//   the change count at which one of its minutes last changed (bounded: the ring's length / 15).
//   Quarter hours, because every real zone's offset is a multiple of 15 minutes, so a local day
//   starts on one, also on DST days. A scope asked every second walks the few changes since its
//   last update; one not asked for longer than the log holds compares its hours' quarters;
// - per scope asked, `DaySums` keeps the sums of the closed minutes of the current local day by
//   hour from local midnight (25 of them on a 25-hour DST day), each with the change count it was
//   taken at and the minutes it covers. An hour holding a minute changed since is summed again;
//   the hour still filling is extended by the minutes that closed since.
// So an update costs the minutes of the hours that changed (one or two for a late reading) plus
// the day's hours (a few comparisons each), whatever the time of day. The sums are those of the
// same minutes as summing the whole day, grouped by hour (equal within floating-point rounding).
// Nothing here is saved across restarts: a restored engine sums each asked scope's day once.

import type { ScopeRef } from './site-state.ts'

/** Figures summed per hour: energy (Wh), location and market CO2 (g), PV energy used (Wh). */
export interface TodayFigures {
  energy: number
  co2: number
  co2Market: number
  pv: number
}

/** Adds a scope's figures over minutes [from, to) to `out` (the engine's bucket reader). */
export type RangeSummer = (ref: ScopeRef, from: number, to: number, out: TodayFigures) => void

/** Changes kept one by one (8 KB per site); older ones only by quarter hour. */
export const LOG_LENGTH = 1024

/**
 * Changes to a site's closed minutes: the last LOG_LENGTH one by one, and per quarter hour of the
 * ring the change count of its last change.
 */
export class ClosedMinuteChanges {
  /** Changes to closed minutes so far; sums taken at `version` v hold for quarters not changed after v. */
  version = 0
  /** Per slot (quarter number mod size): the quarter it holds, -1 for none. */
  private readonly quarters: Float64Array
  /** Per slot: `version` at that quarter's last change. */
  private readonly changedAt: Float64Array
  /** The minute of change v at v mod LOG_LENGTH, for the last LOG_LENGTH changes. */
  private readonly log = new Float64Array(LOG_LENGTH)

  /** `minutes`: the ring's length; quarters older than it are never asked about. */
  constructor(minutes: number) {
    // One more than the ring spans, so a quarter the ring holds never shares a slot with a newer one.
    const size = Math.ceil(minutes / 15) + 2
    this.quarters = new Float64Array(size).fill(-1)
    this.changedAt = new Float64Array(size)
  }

  /** A closed minute's figures changed. */
  note(minute: number): void {
    this.version++
    this.log[this.version % LOG_LENGTH] = minute
    const quarter = Math.floor(minute / 15)
    const slot = quarter % this.quarters.length
    const at = slot < 0 ? slot + this.quarters.length : slot
    this.quarters[at] = quarter
    this.changedAt[at] = this.version
  }

  /** Whether a minute of [from, to) changed after `version`. */
  changedSince(from: number, to: number, version: number): boolean {
    if (version >= this.version) return false
    const n = this.quarters.length
    for (let q = Math.floor(from / 15); q * 15 < to; q++) {
      const slot = ((q % n) + n) % n
      // A slot holding another quarter: this one has not changed since it entered the ring.
      if (this.quarters[slot] === q && this.changedAt[slot]! > version) return true
    }
    return false
  }

  /** Whether every change after `version` is still in the log (minuteOf). */
  logged(version: number): boolean {
    return this.version - version <= LOG_LENGTH
  }

  /** The minute change `v` touched; v within the log (logged). */
  minuteOf(v: number): number {
    return this.log[v % LOG_LENGTH]!
  }

  bytes(): number {
    return this.quarters.byteLength + this.changedAt.byteLength + this.log.byteLength
  }
}

/** Hours kept per day: a local day lasts at most 25 hours (a DST day); one more for safety. */
const HOURS = 26
/** Per hour: first minute, last minute summed (through), change count, then the four figures. */
const FROM = 0
const THROUGH = 1
const VERSION = 2
const ENERGY = 3
const CO2 = 4
const CO2_MARKET = 5
const PV = 6
const FIELDS = 7

/** One scope's per-hour sums of the closed minutes of one local day. */
class DaySums {
  dayStart = Number.NaN
  /** The site's change count at the last update: every hour summed is valid as of it. */
  version = 0
  readonly hours = new Float64Array(HOURS * FIELDS)
}

/** Bytes of one DaySums: its typed array and, roughly, the objects and map entry holding it. */
const BYTES_PER_SCOPE = HOURS * FIELDS * 8 + 170

/** Per scope asked: today's sums of its closed minutes, by hour. */
export class TodaySums {
  private readonly scopes = new Map<ScopeRef, DaySums>()
  private readonly part: TodayFigures = { energy: 0, co2: 0, co2Market: 0, pv: 0 }
  /** Minutes summed so far (the cost of keeping the sums). */
  minutesRead = 0

  constructor(private readonly sum: RangeSummer) {}

  /**
   * A scope's figures over its closed minutes of today: [dayFrom, through], with dayStart the
   * local midnight (dayFrom later only where the ring does not hold the whole day). Into `out`.
   */
  closed(
    ref: ScopeRef,
    changes: ClosedMinuteChanges,
    dayStart: number,
    dayFrom: number,
    through: number,
    out: TodayFigures,
  ): TodayFigures {
    out.energy = 0
    out.co2 = 0
    out.co2Market = 0
    out.pv = 0
    let day = this.scopes.get(ref)
    if (day === undefined) {
      day = new DaySums()
      this.scopes.set(ref, day)
    }
    const hours = day.hours
    if (day.dayStart !== dayStart) {
      day.dayStart = dayStart
      for (let h = 0; h < HOURS; h++) hours[h * FIELDS + FROM] = Number.NaN
    } else if (day.version !== changes.version && changes.logged(day.version)) {
      // The changes since the last update, one by one: their hours are summed again.
      for (let v = day.version + 1; v <= changes.version; v++) {
        const h = Math.floor((changes.minuteOf(v) - dayStart) / 60)
        if (h >= 0 && h < HOURS) hours[h * FIELDS + FROM] = Number.NaN
      }
      day.version = changes.version
    }
    // Too many changes since the last update for the log: each hour compares its quarter hours.
    const compare = day.version !== changes.version
    day.version = changes.version
    for (let h = 0; dayStart + h * 60 <= through; h++) {
      const from = Math.max(dayStart + h * 60, dayFrom)
      const end = Math.min(dayStart + (h + 1) * 60, through + 1)
      if (from >= end) continue
      if (h >= HOURS) {
        // No real day is this long; summed as it stands rather than kept.
        this.add(ref, from, end, out)
        continue
      }
      const i = h * FIELDS
      const stale =
        hours[i + FROM] !== from ||
        hours[i + THROUGH]! >= end ||
        (compare && changes.changedSince(from, hours[i + THROUGH]! + 1, hours[i + VERSION]!))
      if (stale) {
        hours[i + FROM] = from
        hours[i + THROUGH] = from - 1
        hours[i + ENERGY] = 0
        hours[i + CO2] = 0
        hours[i + CO2_MARKET] = 0
        hours[i + PV] = 0
      }
      hours[i + VERSION] = changes.version
      if (hours[i + THROUGH]! < end - 1) {
        const part = this.part
        part.energy = 0
        part.co2 = 0
        part.co2Market = 0
        part.pv = 0
        this.add(ref, hours[i + THROUGH]! + 1, end, part)
        hours[i + ENERGY]! += part.energy
        hours[i + CO2]! += part.co2
        hours[i + CO2_MARKET]! += part.co2Market
        hours[i + PV]! += part.pv
        hours[i + THROUGH] = end - 1
      }
      out.energy += hours[i + ENERGY]!
      out.co2 += hours[i + CO2]!
      out.co2Market += hours[i + CO2_MARKET]!
      out.pv += hours[i + PV]!
    }
    return out
  }

  private add(ref: ScopeRef, from: number, to: number, out: TodayFigures): void {
    this.minutesRead += to - from
    this.sum(ref, from, to, out)
  }

  /** Scopes with sums kept, and their bytes (BYTES_PER_SCOPE each). */
  stats(): { scopes: number; bytes: number } {
    return { scopes: this.scopes.size, bytes: this.scopes.size * BYTES_PER_SCOPE }
  }
}
