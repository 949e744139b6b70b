// Reports of CONTRACT.md §6 (`GET /api/v1/reports`): the period holding a time, local to the site
// (day, week Monday to Monday, month, year), and the report's figures from the buckets that tile it.
// Pure: the calendar and the rows are passed in.

import type { BucketRow } from './accounting-types.ts'
import type { LocalCalendar } from './calendar.ts'

export type ReportPeriod = 'day' | 'week' | 'month' | 'year'
export const REPORT_PERIODS: readonly ReportPeriod[] = ['day', 'week', 'month', 'year']

const DAY_MS = 86_400_000

/** [from, to) in UTC minutes: whole local days, so 1-day buckets always tile a period exactly. */
export interface PeriodBounds {
  from: number
  to: number
}

/** Local day numbers [first, end) of the period holding local day `day`. */
function periodDays(period: ReportPeriod, day: number): [number, number] {
  switch (period) {
    case 'day':
      return [day, day + 1]
    case 'week': {
      // Day 0 (1970-01-01) was a Thursday: (day + 3) mod 7 counts days since Monday.
      const monday = day - ((((day + 3) % 7) + 7) % 7)
      return [monday, monday + 7]
    }
    case 'month': {
      const date = new Date(day * DAY_MS)
      const y = date.getUTCFullYear()
      const m = date.getUTCMonth()
      return [Date.UTC(y, m, 1) / DAY_MS, Date.UTC(y, m + 1, 1) / DAY_MS]
    }
    case 'year': {
      const y = new Date(day * DAY_MS).getUTCFullYear()
      return [Date.UTC(y, 0, 1) / DAY_MS, Date.UTC(y + 1, 0, 1) / DAY_MS]
    }
  }
}

/** The period of kind `period` holding UTC minute `minute`, in the calendar's local time. */
export function periodBounds(calendar: LocalCalendar, period: ReportPeriod, minute: number): PeriodBounds {
  const [first, end] = periodDays(period, calendar.dayNumber(minute))
  return { from: calendar.dayStart(first), to: calendar.dayStart(end) }
}

/** The period just before `bounds` (same kind). */
export function previousBounds(calendar: LocalCalendar, period: ReportPeriod, bounds: PeriodBounds): PeriodBounds {
  return periodBounds(calendar, period, bounds.from - 1)
}

/** The highest 15-minute demand of a scope in a period: kW and the interval's start (ms). */
export interface DemandPeak {
  kW: number
  t: number
}

/** The figures of one scope over one period (§6 reports). */
export interface ReportFigures {
  energyWh: number
  co2G: number
  co2MarketG: number
  /** Σ pvWh / Σ energyWh; 0 without energy (as `live`, §5). */
  pvShare: number
  idleWh: number
  idleCo2G: number
  /** 0 and null without a complete 15-minute interval in the period. */
  peakKW: number
  peakAt: number | null
  /** 0 where no equipment within the scope reports output. */
  outputUnits: number
  /** energyWh / outputUnits; null without output. */
  whPerUnit: number | null
  savedWh: number
  savedCo2G: number
}

/** Sums the buckets that tile a period (§6: each figure the sum of the scope's buckets). */
export function reportFigures(rows: readonly BucketRow[], peak: DemandPeak | null): ReportFigures {
  let energyWh = 0
  let co2G = 0
  let co2MarketG = 0
  let pvWh = 0
  let idleWh = 0
  let idleCo2G = 0
  let outputUnits = 0
  let savedWh = 0
  let savedCo2G = 0
  for (const row of rows) {
    energyWh += row.energyWh
    co2G += row.co2G
    co2MarketG += row.co2MarketG
    pvWh += row.pvWh ?? 0
    idleWh += row.idleWh
    idleCo2G += row.idleCo2G ?? 0
    outputUnits += row.outputUnits ?? 0
    savedWh += row.savedWh ?? 0
    savedCo2G += row.savedCo2G ?? 0
  }
  return {
    energyWh,
    co2G,
    co2MarketG,
    pvShare: energyWh > 0 ? pvWh / energyWh : 0,
    idleWh,
    idleCo2G,
    peakKW: peak?.kW ?? 0,
    peakAt: peak?.t ?? null,
    outputUnits,
    whPerUnit: outputUnits > 0 ? energyWh / outputUnits : null,
    savedWh,
    savedCo2G,
  }
}
