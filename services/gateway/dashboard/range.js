// History ranges local to the site (issue 17; CONTRACT.md §6 reports: day, week Monday to Monday,
// month, year, "local to the site"; §7: buckets start at the site's local boundaries). Pure
// calendar arithmetic: a period is named by a civil date {y, m, d} in the site's zone, and its
// from/to are the instants of the local midnights that bound it, so a daylight-saving day has 23
// or 25 hours, as the site's own buckets do.

export const KINDS = ['day', 'week', 'month', 'year']

/** The GET /api/v1/energy step for each kind; a year's days are summed into months on the page. */
const STEPS = { day: '1h', week: '1d', month: '1d', year: '1d' }

const partFormats = new Map()

function partsFormat(timeZone) {
  let format = partFormats.get(timeZone)
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    })
    partFormats.set(timeZone, format)
  }
  return format
}

/** The wall clock of `ms` in the zone, read as if it were UTC (ms). */
function wallAsUtc(ms, timeZone) {
  const parts = {}
  for (const part of partsFormat(timeZone).formatToParts(ms)) parts[part.type] = Number(part.value)
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second)
}

/** The civil date of an instant in the zone. */
export function civilOf(ms, timeZone) {
  const wall = new Date(wallAsUtc(ms, timeZone))
  return { y: wall.getUTCFullYear(), m: wall.getUTCMonth() + 1, d: wall.getUTCDate() }
}

/** Normalises an out-of-range civil date (day 32, month 0) the way the calendar does. */
function normal(y, m, d) {
  const date = new Date(Date.UTC(y, m - 1, d))
  return { y: date.getUTCFullYear(), m: date.getUTCMonth() + 1, d: date.getUTCDate() }
}

/**
 * The instant of local midnight starting `date`. The zone's offset is read at a first guess and
 * again at the result, which settles it also when midnight is near a daylight-saving change.
 */
export function startOfDay(date, timeZone) {
  const wall = Date.UTC(date.y, date.m - 1, date.d)
  let ms = wall - (wallAsUtc(wall, timeZone) - wall)
  ms = wall - (wallAsUtc(ms, timeZone) - ms)
  return ms
}

/** The first civil day of the period of `kind` holding `date`. */
function firstDay(kind, { y, m, d }) {
  if (kind === 'day') return { y, m, d }
  if (kind === 'week') {
    // getUTCDay: 0 is Sunday; weeks start on Monday.
    const weekday = new Date(Date.UTC(y, m - 1, d)).getUTCDay()
    return normal(y, m, d - ((weekday + 6) % 7))
  }
  if (kind === 'month') return { y, m, d: 1 }
  return { y, m: 1, d: 1 }
}

/** `date` moved by `delta` periods of `kind`, as the first day of that period. */
export function shiftDate(kind, date, delta) {
  const { y, m, d } = firstDay(kind, date)
  if (kind === 'day') return normal(y, m, d + delta)
  if (kind === 'week') return normal(y, m, d + 7 * delta)
  if (kind === 'month') return normal(y, m + delta, 1)
  return { y: y + delta, m: 1, d: 1 }
}

/**
 * The period of `kind` holding `date`: its first day, its bounds (from ≤ t < to, epoch ms), the
 * step to ask for, and whether the page sums its days into months (a year).
 */
export function periodOf(kind, date, timeZone) {
  const first = firstDay(kind, date)
  const next = shiftDate(kind, first, 1)
  return {
    kind,
    date: first,
    from: startOfDay(first, timeZone),
    to: startOfDay(next, timeZone),
    step: STEPS[kind],
    byMonth: kind === 'year',
  }
}

/** The local months that a period covers, each {from, to}, clipped to the period. */
export function monthsOf(period, timeZone) {
  const months = []
  let first = { y: period.date.y, m: period.date.m, d: 1 }
  for (let from = startOfDay(first, timeZone); from < period.to; ) {
    first = normal(first.y, first.m + 1, 1)
    const to = startOfDay(first, timeZone)
    months.push({ from: Math.max(from, period.from), to: Math.min(to, period.to) })
    from = to
  }
  return months
}

const pad = (n, width = 2) => String(n).padStart(width, '0')

/** YYYY-MM-DD, for the URL. */
export function formatDate({ y, m, d }) {
  return `${pad(y, 4)}-${pad(m)}-${pad(d)}`
}

/** A YYYY-MM-DD that names a real day, else undefined. */
export function parseDate(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text ?? '')
  if (!match) return undefined
  const date = { y: Number(match[1]), m: Number(match[2]), d: Number(match[3]) }
  const back = normal(date.y, date.m, date.d)
  return back.y === date.y && back.m === date.m && back.d === date.d ? date : undefined
}
