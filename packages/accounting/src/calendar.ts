// Local-time calendar of one site (CONTRACT.md §7: "Buckets of every step start at the site's
// local boundaries"; §1: the hourly grid intensity is in the site's local time).
//
// Time inside the engine is the absolute UTC minute number (epoch seconds / 60). Intl formatters
// are slow, so the UTC offset is computed once per UTC quarter hour and cached: every real zone's
// offset is a multiple of 15 minutes (India +5:30, Nepal +5:45) and changes only at such
// boundaries, so a quarter-hour cache is exact, also on DST change days.

export type BucketStep = '1m' | '15m' | '1h' | '1d'
export const STEPS: readonly BucketStep[] = ['1m', '15m', '1h', '1d']

const CACHE_LIMIT = 100_000
const MINUTES_PER_DAY = 1440

function mod(a: number, n: number): number {
  const r = a % n
  return r < 0 ? r + n : r
}

export class LocalCalendar {
  private readonly formatter: Intl.DateTimeFormat
  /** UTC quarter-hour number → offset of local time from UTC in minutes. */
  private readonly offsets = new Map<number, number>()
  /** Local day number (days since 1970-01-01 local) → UTC minute of its local midnight. */
  private readonly dayStarts = new Map<number, number>()

  constructor(readonly timeZone: string) {
    this.formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    })
  }

  /** Local time minus UTC, in minutes, at UTC minute `minute`. */
  offset(minute: number): number {
    const quarter = Math.floor(minute / 15)
    let off = this.offsets.get(quarter)
    if (off === undefined) {
      off = this.computeOffset(quarter * 15)
      if (this.offsets.size >= CACHE_LIMIT) this.offsets.clear()
      this.offsets.set(quarter, off)
    }
    return off
  }

  private computeOffset(minute: number): number {
    let y = 0
    let mo = 0
    let d = 0
    let h = 0
    let mi = 0
    for (const part of this.formatter.formatToParts(minute * 60_000)) {
      if (part.type === 'year') y = Number(part.value)
      else if (part.type === 'month') mo = Number(part.value)
      else if (part.type === 'day') d = Number(part.value)
      else if (part.type === 'hour') h = Number(part.value)
      else if (part.type === 'minute') mi = Number(part.value)
    }
    return Date.UTC(y, mo - 1, d, h, mi) / 60_000 - minute
  }

  /** Minutes since the local epoch (local wall clock read as if it were UTC). */
  localMinute(minute: number): number {
    return minute + this.offset(minute)
  }

  hourOfDay(minute: number): number {
    return Math.floor(mod(this.localMinute(minute), MINUTES_PER_DAY) / 60)
  }

  dayNumber(minute: number): number {
    return Math.floor(this.localMinute(minute) / MINUTES_PER_DAY)
  }

  /** UTC minute of local midnight starting local day `day`; on a DST day the offset at midnight counts. */
  dayStart(day: number): number {
    let start = this.dayStarts.get(day)
    if (start === undefined) {
      const local = day * MINUTES_PER_DAY
      start = local - this.offset(local)
      start = local - this.offset(start)
      // A zone whose change happens at midnight: the first minute that belongs to the day.
      if (this.dayNumber(start) < day) start = local - this.offset(start + 60)
      if (this.dayStarts.size >= CACHE_LIMIT) this.dayStarts.clear()
      this.dayStarts.set(day, start)
    }
    return start
  }

  /** Local year × 12 + month index of the minute's local date (for the demand month, §5). */
  monthKey(minute: number): number {
    const date = new Date(this.dayNumber(minute) * 86_400_000)
    return date.getUTCFullYear() * 12 + date.getUTCMonth()
  }

  /** Start (UTC minute) of the bucket of `step` holding `minute`. */
  bucketStart(step: BucketStep, minute: number): number {
    switch (step) {
      case '1m':
        return minute
      case '15m':
        return minute - mod(this.localMinute(minute), 15)
      case '1h':
        return minute - mod(this.localMinute(minute), 60)
      case '1d':
        return this.dayStart(this.dayNumber(minute))
    }
  }

  /** End (exclusive, UTC minute) of the bucket of `step` starting at `start`. */
  bucketEnd(step: BucketStep, start: number): number {
    switch (step) {
      case '1m':
        return start + 1
      case '15m':
        return start + 15
      case '1h':
        return start + 60
      case '1d':
        return this.dayStart(this.dayNumber(start) + 1)
    }
  }
}
