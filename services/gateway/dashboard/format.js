// Number and time formatting an operator can read at a glance: a unit prefix chosen by magnitude
// and a fixed number of decimals for that magnitude, so a value that ticks does not jump in width.

const numberFormats = new Map()

/** Intl.NumberFormat is costly to build and cheap to reuse: one per fraction-digit count. */
function fixed(value, digits) {
  let format = numberFormats.get(digits)
  if (!format) {
    format = new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits })
    numberFormats.set(digits, format)
  }
  return format.format(value)
}

/** About three significant digits: 1.53, 15.3, 153. */
function threeDigits(value) {
  const magnitude = Math.abs(value)
  return fixed(value, magnitude >= 100 || magnitude === 0 ? 0 : magnitude >= 10 ? 1 : 2)
}

const SI = [
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
]

function withPrefix(value, unit) {
  if (!Number.isFinite(value)) return '—'
  const magnitude = Math.abs(value)
  for (const [scale, prefix] of SI) {
    if (magnitude >= scale) return `${threeDigits(value / scale)} ${prefix}${unit}`
  }
  return `${fixed(value, 0)} ${unit}`
}

/** Watts: 850 W, 41.0 kW, 1.53 MW. */
export function power(watts) {
  return withPrefix(watts, 'W')
}

/** kW figures of the demand (CONTRACT.md §5) in the same style as power. */
export function powerKW(kilowatts) {
  return withPrefix(kilowatts * 1000, 'W')
}

/** Watt-hours: 950 Wh, 8.12 MWh. */
export function energy(wattHours) {
  return withPrefix(wattHours, 'Wh')
}

/** kWh with no prefix change, for estimates that read better in one unit (wasted energy). */
export function kWh(wattHours) {
  return `${threeDigits(wattHours / 1000)} kWh`
}

/** Grams of CO2e: 850 g, 3.96 t (tonnes), 1.20 kt. */
export function co2(grams) {
  if (!Number.isFinite(grams)) return '—'
  const magnitude = Math.abs(grams)
  if (magnitude >= 1e9) return `${threeDigits(grams / 1e9)} kt`
  if (magnitude >= 1e6) return `${threeDigits(grams / 1e6)} t`
  if (magnitude >= 1e3) return `${threeDigits(grams / 1e3)} kg`
  return `${fixed(grams, 0)} g`
}

export function intensity(gPerKWh) {
  return Number.isFinite(gPerKWh) ? `${fixed(gPerKWh, 0)} g/kWh` : '—'
}

/** A share 0..1 as a percentage. */
export function share(fraction) {
  return Number.isFinite(fraction) ? `${fixed(fraction * 100, fraction >= 0.1 ? 0 : 1)} %` : '—'
}

export function duration(ms) {
  const minutes = Math.max(0, Math.round(ms / 60_000))
  if (minutes < 60) return `${minutes} min`
  const hours = Math.floor(minutes / 60)
  return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`
}

/**
 * Times in the site's own time zone (CONTRACT.md §5: `at` is the site clock; "today" is the
 * site's local day). Without a zone the browser's is used, and `zoneLabel` says so.
 */
export class SiteTime {
  constructor(timeZone) {
    this.timeZone = timeZone
    // 24-hour clock whatever the locale: shift logs and meters in a plant read that way.
    const zone = timeZone ? { timeZone, hourCycle: 'h23' } : { hourCycle: 'h23' }
    this.zoneLabel = timeZone ?? 'browser time'
    this.time = new Intl.DateTimeFormat(undefined, { ...zone, hour: '2-digit', minute: '2-digit', second: '2-digit' })
    this.minute = new Intl.DateTimeFormat(undefined, { ...zone, hour: '2-digit', minute: '2-digit' })
    this.day = new Intl.DateTimeFormat(undefined, { ...zone, month: 'short', day: 'numeric' })
    this.parts = new Intl.DateTimeFormat('en-US', {
      ...zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    })
  }

  /** "14:03:22", with the day in front when it is not the day of `reference`. */
  stamp(ms, reference) {
    const time = this.time.format(ms)
    if (reference === undefined || this.day.format(ms) === this.day.format(reference)) return time
    return `${this.day.format(ms)} ${time}`
  }

  /** Offset of the zone from UTC at `ms`, in ms: chart ticks fall on local hours. */
  offsetMs(ms) {
    const parts = {}
    for (const part of this.parts.formatToParts(ms)) parts[part.type] = Number(part.value)
    const local = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second)
    return local - Math.floor(ms / 1000) * 1000
  }
}
