// Retention tiers of CONTRACT.md §6 `GET /api/v1/energy`: 1-minute buckets for at least the last
// 7 days of the site clock and never less than `maxAgeS` (a reading up to maxAgeS late revises its
// minute, §7, so the minute must still be there), 15-minute and hourly for at least 13 months,
// daily for years; each an option. Demand intervals (reports' month peak) keep as long as 15m.

import type { BucketStep } from '@plantwatt/contract'

export type Kind = BucketStep | 'demand'
export const KINDS: readonly Kind[] = ['1m', '15m', '1h', '1d', 'demand']

const DAY_S = 86_400
/** 13 months are at most 397 days (any 13 consecutive months); 400 is "at least 13 months". */
export const THIRTEEN_MONTHS_S = 400 * DAY_S

/** Seconds each kind is kept behind the site clock; Infinity keeps it for good. */
export type Retention = Record<Kind, number>

export const DEFAULT_RETENTION: Retention = {
  '1m': 7 * DAY_S,
  '15m': THIRTEEN_MONTHS_S,
  '1h': THIRTEEN_MONTHS_S,
  '1d': Number.POSITIVE_INFINITY,
  demand: THIRTEEN_MONTHS_S,
}

/**
 * The retention in force: the defaults overridden by `given`, checked against §6's minimums so that
 * a misconfiguration fails at start-up with a message naming the option, not as missing history.
 */
export function resolveRetention(given: Partial<Retention> | undefined, maxAgeS: number): Retention {
  const retention = { ...DEFAULT_RETENTION, ...given }
  for (const kind of KINDS) {
    const s = retention[kind]
    if (!(s > 0)) throw new RangeError(`history retention of ${kind} must be a positive number of seconds, got ${s}`)
  }
  const minimumMinuteS = Math.max(7 * DAY_S, maxAgeS)
  if (retention['1m'] < minimumMinuteS) {
    throw new RangeError(
      `history retention of 1m is ${retention['1m']} s; CONTRACT.md §6 needs at least ${minimumMinuteS} s (7 days and maxAgeS)`,
    )
  }
  for (const kind of ['15m', '1h', 'demand'] as const) {
    if (retention[kind] < THIRTEEN_MONTHS_S) {
      throw new RangeError(
        `history retention of ${kind} is ${retention[kind]} s; CONTRACT.md §6 needs at least 13 months`,
      )
    }
  }
  if (retention['1d'] < THIRTEEN_MONTHS_S) {
    throw new RangeError(
      `history retention of 1d is ${retention['1d']} s; CONTRACT.md §6 keeps daily buckets for years`,
    )
  }
  return retention
}

/** First minute (UTC minutes since the epoch) still kept of `kind` when the site clock is `nowMs`. */
export function keptFromMinute(retention: Retention, kind: Kind, nowMs: number): number {
  const s = retention[kind]
  if (s === Number.POSITIVE_INFINITY) return 0
  return Math.max(0, Math.floor((nowMs - s * 1000) / 60_000))
}
