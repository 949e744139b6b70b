// Minutes older than the in-memory ring ("cold" minutes, issue 13). CONTRACT.md §7 lets a reading
// revise buckets up to maxAgeS (7 days) behind the site clock; the ring holds 25 h. A reading whose
// energy lands on an older minute loads that minute's column from the processor's state store
// (persisted at every checkpoint, kept for maxAgeS: ColdPort.column, a synchronous read of a memory
// map), applies the change, and the buckets holding that minute are revised at every step:
// - 1m: exact, from the column (and the site's PV and grid in it, for carbon);
// - 15m, 1h, 1d: the bucket as last sent (held here, else as the history store holds it:
//   ColdPort.bucket) plus the difference between the minute's new and old figures, so the other
//   minutes of the day are never read; the peak is the higher of the two (peaks only go up).
// Only scopes whose figures changed are sent (a site's carbon factor follows its total energy, so
// with PV or grid meters that can be every scope of the site). Revisions go up by one.
//
// Crash safety: the revisions are not sent at once. They wait in an outbox that is part of the
// next checkpoint, with the changed columns, and go out (bus and history store) once that
// checkpoint is committed. A crash before the commit loses both the column change and the
// revisions, and the journal's replay redoes them; a crash after it restores the outbox, which is
// sent again (the store drops what it already holds). Sending them before the checkpoint would let
// a replay add the same difference a second time to a bucket the store already revised.

import { SiteBuckets } from './bucket-store.ts'
import type { BucketStep } from './calendar.ts'

/** What the processor lends accounting for cold minutes; both reads are synchronous. */
export interface ColdPort {
  /** The persisted column of a site's minute (bucket-store.ts column()), undefined when none. */
  column(site: string, minute: number): Uint8Array | undefined
  /** The bucket as the history store holds it, undefined when none. */
  bucket(scope: string, step: BucketStep, tMs: number): StoredFigures | undefined
}

export interface StoredFigures {
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  revision: number
  savedWh?: number
  savedCo2G?: number
  pvWh?: number
  idleCo2G?: number
  outputUnits?: number
}

/** A cold minute held in memory: slot 0 its column now, slot 1 as its buckets were last sent. */
export class ColdColumn {
  readonly buckets: SiteBuckets
  /** Snapshot generation when last changed: kept until the checkpoint holding it is surely written. */
  generation: number

  constructor(
    readonly minute: number,
    nEq: number,
    nAgg: number,
    generation: number,
  ) {
    this.buckets = new SiteBuckets(2, nEq, nAgg)
    this.generation = generation
  }
}
