import type { BucketStep } from '@plantwatt/contract'

/**
 * One bucket as the processor emits it on the `buckets` channel (CONTRACT.md §5), `t` its start in
 * ms. The optional figures are §5's "present where they apply"; a stored bucket gives back exactly
 * the fields and numbers it was written with, because §5 says the history API answers exactly the
 * figures last sent.
 */
export interface StoredBucket {
  scope: string
  step: BucketStep
  t: number
  revision: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  outputUnits?: number
  idleCo2G?: number
  pvWh?: number
  savedWh?: number
  savedCo2G?: number
}

/** A bucket as `range` reads it back: the scope and step were the query's. */
export type BucketRecord = Omit<StoredBucket, 'scope' | 'step'>

/**
 * The average demand of a scope over one 15-minute interval (§5 `live.demand`, §6 reports'
 * `peakKW`/`peakAt`), kept apart from the 15m buckets so that its retention is its own: a year's
 * report needs every interval's demand even where 15m buckets are kept shorter.
 */
export interface DemandInterval {
  scope: string
  /** The interval's start, ms, on a quarter-hour boundary of the site. */
  t: number
  kW: number
  revision: number
}

export type DemandRecord = Omit<DemandInterval, 'scope'>

/** Why a row was not stored: each one is counted, none throws (bad input never crashes). */
export type RejectReason = 'bad_scope' | 'bad_step' | 'bad_time' | 'bad_revision' | 'bad_figure' | 'expired'

export interface WriteResult {
  /** Rows stored (new, or a higher revision than the stored one). */
  written: number
  /** Rows whose revision was not higher than the stored (or an earlier row of the batch's) one. */
  stale: number
  /** Rows refused, by reason. */
  rejected: Partial<Record<RejectReason, number>>
  /**
   * Stale rows whose figures differ from the stored ones (at most one per key of the batch). The
   * store holds other figures at this or a higher revision: the writer must send the bucket again
   * with `storedRevision + 1` (on the `buckets` channel too), else its newest figures never land.
   * This happens after a restore, when revisions counted from a checkpoint are behind the store.
   */
  conflicts: Conflict[]
}

export interface Conflict {
  scope: string
  step: BucketStep | 'demand'
  t: number
  storedRevision: number
}
