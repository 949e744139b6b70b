// The engine's public figures and options (CONTRACT.md §5 `live` and `buckets`, §6
// `GET /api/v1/energy`): what callers of Accounting pass and get back, shared by its parts.

import type { BucketStep } from './calendar.ts'

export interface AccountingOptions {
  /**
   * Seconds of readings kept per device and measurement behind its latest one, so that late
   * readings re-split their interval exactly. Default max(300, 3 × latenessS) of the site: NB-IoT
   * power-saving batches arrive in order per device; what comes late within one device are
   * retransmissions and reordered messages, a batch interval or two behind.
   */
  retentionS?: number
  /**
   * Length of the in-memory 1-minute history ring (default 1516: 25 h 16 min, see bucket-store.ts).
   * Older minutes, up to maxAgeS, are the processor's state store's (snapshot() columns,
   * cold-minutes.ts): late readings still revise them when a ColdPort is set (`cold`).
   */
  historyMinutes?: number
  /** Longest gap between power readings that the trapezoid rule bridges (default 900 s, §7). */
  maxPowerGapS?: number
  /** Most readings kept per device and measurement, whatever their times (default 65,536). */
  maxRetained?: number
}

export type AcceptResult = 'accepted' | 'duplicate' | 'too_old' | 'out_of_range'

/** A `bucket` frame of CONTRACT.md §5 without `type` and `sub`; `t` in ms. */
export interface BucketEvent {
  scope: string
  step: BucketStep
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  revision: number
  /** PV energy counted as used by the scope: its energy × the minute's PV share (§5 optional, §7). */
  pvWh?: number
  /** CO2 of the idle energy: idle energy × the minute's location-based factor (§5 optional). */
  idleCo2G?: number
  /** Units produced: increments of the equipment's `output` counters within (§5 optional, §2); absent when 0. */
  outputUnits?: number
  /** Tuning savings (CONTRACT.md §5 optional fields), added by the processor's tuning loop. */
  savedWh?: number
  savedCo2G?: number
}

/** One row of `GET /api/v1/energy` (§6); `t` in ms. */
export interface BucketRow {
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  /** The §5 optional figures, as the bucket events carry them (see BucketEvent). */
  pvWh?: number
  idleCo2G?: number
  outputUnits?: number
  /** Tuning savings, where the bucket events carried them (§5 optional fields). */
  savedWh?: number
  savedCo2G?: number
}

/** The accounting figures of a `live` frame (§5); the caller adds powerW and idle. */
export interface LiveAccounting {
  scope: string
  /** The site clock in ms, null before the site's first reading. */
  at: number | null
  energyTodayWh: number
  co2TodayG: number
  co2MarketTodayG: number
  /** Grid intensity in force at the site clock. */
  gridGPerKWh: number
  /** Today's: the share of the scope's energy today that PV covered, minute by minute. */
  pvShare: number
  demand: { intervalStart: number; kW: number; forecastKW: number; monthPeakKW: number } | null
}

export interface EnergyFigures {
  energyWh: number
  co2G: number
  co2MarketG: number
}

export interface AccountingCounters {
  accepted: number
  duplicate: number
  too_old: number
  out_of_range: number
  /** Accepted readings older than their device's retained readings: see accept(). */
  approximated: number
  /**
   * Minute pieces that could not be placed: older than the ring and either older than maxAgeS or
   * without the state store's columns (no ColdPort). Their energy is lost; the processor logs it.
   */
  beyondHistory: number
  /** Minute pieces placed in minutes older than the ring (cold-minutes.ts). */
  coldPlaced: number
}
