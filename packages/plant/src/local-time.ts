// Local clock arithmetic for sites (CONTRACT.md §7: hours and days are the site's local ones).
// Intl formatters are costly to build, so there is one per time zone, made on first use.

const hourFormatters = new Map<string, Intl.DateTimeFormat>()

function hourFormatter(timeZone: string): Intl.DateTimeFormat {
  let formatter = hourFormatters.get(timeZone)
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-GB', { timeZone, hour: 'numeric', hourCycle: 'h23' })
    hourFormatters.set(timeZone, formatter)
  }
  return formatter
}

/** The hour of day (0–23) in `timeZone` at `epochMs`. */
export function localHour(timeZone: string, epochMs: number): number {
  return Number(hourFormatter(timeZone).format(epochMs))
}

/** Grid intensity (gCO2e/kWh) in force at `epochMs` for a flat or 24-hour profile. */
export function gridIntensityAt(profile: number | readonly number[] | undefined, timeZone: string, epochMs: number) {
  if (profile === undefined) return 0
  if (typeof profile === 'number') return profile
  return profile[localHour(timeZone, epochMs)] ?? 0
}
