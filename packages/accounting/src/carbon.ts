// Carbon of CONTRACT.md §7, per 1-minute bucket and site:
//   E = the site's equipment energy, G = PV meters, I = grid meters where the site has them, else
//   max(0, E − G); location-based CO2 = I × grid intensity of the bucket's local hour,
//   market-based = I × (1 − greenShare) × residualMix; a scope's share = its energy × I / E × the
//   same factor (0 when E = 0); pvShare = min(G, E) / E.
// So a scope's CO2 in a minute is its energy × k, with k the same for every scope of the site;
// k is computed when read from the site's per-minute E, G, I, never stored per scope.
// Figures replaced at run time (§6 PUT …/carbon) apply from the minute after the site clock at
// the time of the call; earlier minutes keep the figures they had.

import type { SiteCarbon } from '@plantwatt/contract'
import type { LocalCalendar } from './calendar.ts'

export interface CarbonVersion {
  /** First UTC minute the figures apply to. */
  fromMinute: number
  carbon: SiteCarbon | undefined
}

export function carbonAt(versions: readonly CarbonVersion[], minute: number): SiteCarbon | undefined {
  for (let i = versions.length - 1; i >= 0; i--) {
    const v = versions[i]!
    if (v.fromMinute <= minute) return v.carbon
  }
  return undefined
}

/** Grid intensity (gCO2e/kWh) in force at a minute: a flat figure or the local hour's (§1). */
export function gridIntensity(carbon: SiteCarbon | undefined, calendar: LocalCalendar, minute: number): number {
  if (carbon === undefined) return 0
  const grid = carbon.gridGPerKWh
  if (typeof grid === 'number') return grid
  return grid[calendar.hourOfDay(minute)] ?? 0
}

export function marketIntensity(carbon: SiteCarbon | undefined): number {
  return carbon === undefined ? 0 : (1 - carbon.greenShare) * carbon.residualMixGPerKWh
}

/** Per-minute factors of a site: gCO2e per Wh of any scope's energy, and the PV share. */
export interface MinuteFactors {
  location: number
  market: number
  pvShare: number
}

/** E, G and grid import in any one unit; intensities in g/kWh; factors come out in g/Wh. */
export function minuteFactors(
  e: number,
  g: number,
  gridImport: number,
  hasGridMeters: boolean,
  location: number,
  market: number,
  out: MinuteFactors,
): MinuteFactors {
  if (!(e > 0)) {
    out.location = 0
    out.market = 0
    out.pvShare = 0
    return out
  }
  // A grid meter reads negative while exporting; import is never below zero.
  const imported = hasGridMeters ? Math.max(0, gridImport) : Math.max(0, e - g)
  const share = imported / e
  out.location = (share * location) / 1000
  out.market = (share * market) / 1000
  out.pvShare = Math.min(Math.max(g, 0), e) / e
  return out
}

/**
 * Replaces a site's carbon figures (§6 PUT /api/v1/sites/{site}/carbon) for the minutes after the
 * site clock's (`clock`, epoch s; undefined before the first reading: all of them); buckets up to
 * the clock's minute keep the figures they had.
 */
export function replaceCarbon(versions: CarbonVersion[], clock: number | undefined, carbon: SiteCarbon): void {
  const fromMinute = clock === undefined ? Number.NEGATIVE_INFINITY : Math.floor(clock / 60) + 1
  const last = versions[versions.length - 1]!
  const version = { fromMinute, carbon: structuredClone(carbon) }
  if (last.fromMinute === fromMinute) versions[versions.length - 1] = version
  else versions.push(version)
}
