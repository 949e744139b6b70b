// Shift calendars and local time of a site.
//
// Production follows the site's local wall clock. Three patterns, as battery-cell plants run them:
// - CONTINUOUS: 24/7 (formation and ageing, dry rooms, utilities); no shift events.
// - THREE_SHIFT: three 8-hour shifts (06:00, 14:00, 22:00) with a weekly stop from Sunday 06:00 to
//   Monday 06:00 for maintenance (electrode lines, most assembly lines).
// - TWO_SHIFT: 06:00 to 22:00, Monday to Friday (some assembly lines).
// Within planned time there are events: a shift handover at each shift start inside a planned
// period, and a meal break in the middle of each shift (10:00, 18:00, 02:00). Each pattern is a table
// over the 10,080 minutes of a week, so looking up "planned now?" costs one array read.
//
// Local time: the UTC offset of a time zone is constant within every UTC quarter hour (all real
// offsets are multiples of 15 minutes, so DST switches fall on quarter hours), so each site caches
// its offset for the current quarter hour and asks Intl once per quarter hour of simulated time.

export const CONTINUOUS = 0
export const THREE_SHIFT = 1
export const TWO_SHIFT = 2
export type Pattern = typeof CONTINUOUS | typeof THREE_SHIFT | typeof TWO_SHIFT

export const MINUTES_PER_WEEK = 10_080
/** Event codes of PatternTable.event. */
export const EVENT_HANDOVER = 1
export const EVENT_MEAL = 2
/** minutesToStart of a pattern that never starts (continuous). */
export const NEVER = 0xffff

export interface PatternTable {
  /** 1 where production is planned (Monday 00:00 local is minute 0). */
  planned: Uint8Array
  /** Minutes from this minute to the next start of a planned period (0 inside one, NEVER if none). */
  minutesToStart: Uint16Array
  /** EVENT_* at the first minute of a handover or meal break inside planned time, else 0. */
  event: Uint8Array
}

const SHIFT_STARTS = [360, 840, 1320]
const MEAL_MINUTES = [600, 1080, 120]

function buildTable(isPlanned: (day: number, minute: number) => boolean, shiftEvents: boolean): PatternTable {
  const planned = new Uint8Array(MINUTES_PER_WEEK)
  for (let m = 0; m < MINUTES_PER_WEEK; m++) planned[m] = isPlanned(Math.floor(m / 1440), m % 1440) ? 1 : 0
  const at = (m: number) => planned[(m + MINUTES_PER_WEEK) % MINUTES_PER_WEEK]!
  const minutesToStart = new Uint16Array(MINUTES_PER_WEEK).fill(NEVER)
  const starts: number[] = []
  for (let m = 0; m < MINUTES_PER_WEEK; m++) if (at(m) === 1 && at(m - 1) === 0) starts.push(m)
  for (let m = 0; m < MINUTES_PER_WEEK; m++) {
    if (at(m) === 1) {
      minutesToStart[m] = 0
      continue
    }
    let best: number = NEVER
    for (const start of starts) best = Math.min(best, (start - m + MINUTES_PER_WEEK) % MINUTES_PER_WEEK)
    minutesToStart[m] = best
  }
  const event = new Uint8Array(MINUTES_PER_WEEK)
  if (shiftEvents) {
    for (let m = 0; m < MINUTES_PER_WEEK; m++) {
      const minute = m % 1440
      if (SHIFT_STARTS.includes(minute) && at(m) === 1 && at(m - 1) === 1) event[m] = EVENT_HANDOVER
      else if (MEAL_MINUTES.includes(minute) && at(m) === 1) event[m] = EVENT_MEAL
    }
  }
  return { planned, minutesToStart, event }
}

/** Tables by pattern, built once. Days: 0 = Monday … 6 = Sunday. */
export const PATTERNS: readonly PatternTable[] = [
  buildTable(() => true, false),
  buildTable((day, minute) => !((day === 6 && minute >= 360) || (day === 0 && minute < 360)), true),
  buildTable((day, minute) => day <= 4 && minute >= 360 && minute < 1320, true),
]

const QUARTER_HOUR_MS = 900_000

/** Local time of one site, with the UTC offset cached per UTC quarter hour. */
export class SiteClock {
  readonly timezone: string
  private readonly format: Intl.DateTimeFormat | undefined
  private fromMs = 1
  private untilMs = 0
  offsetMs = 0

  constructor(timezone: string) {
    this.timezone = timezone
    try {
      this.format = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      })
    } catch {
      // validatePlant refuses unknown zones; a plant that skipped it runs on UTC.
      this.format = undefined
    }
  }

  /** Local time of utcMs, as epoch ms of the same wall-clock reading in UTC. */
  localMs(utcMs: number): number {
    if (utcMs < this.fromMs || utcMs >= this.untilMs) this.refresh(utcMs)
    return utcMs + this.offsetMs
  }

  private refresh(utcMs: number): void {
    this.fromMs = Math.floor(utcMs / QUARTER_HOUR_MS) * QUARTER_HOUR_MS
    this.untilMs = this.fromMs + QUARTER_HOUR_MS
    this.offsetMs = this.format === undefined ? 0 : offsetAt(this.format, this.fromMs)
  }
}

function offsetAt(format: Intl.DateTimeFormat, utcMs: number): number {
  let y = 1970
  let mo = 1
  let d = 1
  let h = 0
  let mi = 0
  let s = 0
  for (const part of format.formatToParts(utcMs)) {
    const v = Number(part.value)
    if (part.type === 'year') y = v
    else if (part.type === 'month') mo = v
    else if (part.type === 'day') d = v
    else if (part.type === 'hour') h = v
    else if (part.type === 'minute') mi = v
    else if (part.type === 'second') s = v
  }
  return Date.UTC(y, mo - 1, d, h, mi, s) - Math.floor(utcMs / 1000) * 1000
}

/** Minute of the week (Monday 00:00 = 0) of a local time from SiteClock.localMs. */
export function minuteOfWeek(localMs: number): number {
  const minute = Math.floor(localMs / 60_000)
  const day = Math.floor(minute / 1440)
  // 1970-01-01 was a Thursday (index 3 when Monday is 0).
  return ((((day + 3) % 7) + 7) % 7) * 1440 + (minute - day * 1440)
}

/** Local hour of day with fractions, 0 ≤ h < 24. */
export function hourOfDay(localMs: number): number {
  const ms = ((localMs % 86_400_000) + 86_400_000) % 86_400_000
  return ms / 3_600_000
}

/** Whole local days since the epoch (changes at local midnight). */
export function localDay(localMs: number): number {
  return Math.floor(localMs / 86_400_000)
}
