// The processor's side of the embedded history store (issue 13, packages/history-store): every
// bucket event sent on the `buckets` channel is written there as it is (same fields, same revision),
// with the 15-minute demand of each 15m bucket (§6 reports' peakKW); GET /api/v1/energy reads the
// closed buckets back from it. The store is opened and closed by the composition root (`up`,
// `processor`), which owns <data-dir>/history; one process writes it.
//
// Conflicts: after a restore, revisions counted from the checkpoint can be behind the store. The
// store refuses a lower revision and reports the rows whose figures differ; they are handed back to
// the processor, which sends them again above the stored revision (§5: revisions only go up).

import type { BucketEvent } from '@plantwatt/accounting'
import type { BucketStep } from '@plantwatt/contract'
import type {
  BucketRecord,
  Conflict,
  DemandInterval,
  HistoryStore,
  RejectReason,
  WriteResult,
} from '@plantwatt/history-store'
import type { Logger } from 'pino'
import { DemandPeaks } from './demand-peaks.ts'

/** §6: at most 100,000 buckets per answer; one more is read to know that a range has more. */
export const MAX_BUCKETS_PER_ANSWER = 100_000

/** A stored bucket as a bucket event's figures (the revision is the caller's). */
function rowOf(record: BucketRecord): Omit<BucketRecord, 'revision'> {
  const { revision: _revision, ...row } = record
  return row
}

/** Demand in kW of a 15-minute bucket: its energy spread over a quarter hour (Wh / 0.25 h / 1000). */
export const quarterHourKW = (energyWh: number) => energyWh / 250

export interface HistoryStoreSinkCounters {
  written: number
  stale: number
  rejected: Partial<Record<RejectReason, number>>
  conflicts: number
  /** Batches the store failed to take (queue full, disk error): logged, and counted here. */
  failedBatches: number
}

export interface HistoryStoreSinkOptions {
  store: HistoryStore
  logger: Logger
  /**
   * The store holds this bucket at `storedRevision` (at or above the one sent) with other figures:
   * accounting sends it again above that, with its current figures, if it still holds the whole
   * bucket (true). Otherwise the stored figures, computed when it did, are sent again (below).
   */
  reviseAbove: (event: BucketEvent, storedRevision: number) => boolean
  /** Buckets to send on the `buckets` channel (they are written here too). */
  publish: (events: BucketEvent[]) => void
}

export class HistoryStoreSink {
  readonly counters: HistoryStoreSinkCounters = { written: 0, stale: 0, rejected: {}, conflicts: 0, failedBatches: 0 }
  /** Writes not yet settled (each a batch of one publish round): bounded by the store's queue bound. */
  private readonly inFlight = new Set<Promise<void>>()
  /** Peaks of the demand intervals written (reports' peakKW), told of every demand write here. */
  readonly demandPeaks: DemandPeaks
  /** The newest bucket of each key handed to a write that has not settled yet (see latest()). */
  private readonly unsettled = new Map<string, BucketEvent>()

  constructor(private readonly options: HistoryStoreSinkOptions) {
    this.demandPeaks = new DemandPeaks(options.store)
  }

  get store(): HistoryStore {
    return this.options.store
  }

  /** Writes one round of bucket events; settles in the background, counted and logged. */
  write(events: readonly BucketEvent[]): void {
    if (events.length === 0) return
    const { store } = this.options
    const demand: DemandInterval[] = []
    for (const event of events) {
      if (event.step === '15m') {
        demand.push({ scope: event.scope, t: event.t, kW: quarterHourKW(event.energyWh), revision: event.revision })
      }
    }
    if (demand.length > 0) this.demandPeaks.changed(demand)
    for (const event of events) this.unsettled.set(`${event.scope} ${event.step} ${event.t}`, event)
    const job = Promise.all([store.write(events), demand.length > 0 ? store.writeDemand(demand) : undefined])
      .finally(() => {
        if (demand.length > 0) this.demandPeaks.changed(demand)
      })
      .then(([buckets, demandResult]) => {
        this.count(buckets)
        if (demandResult) {
          this.count(demandResult)
          this.rewriteDemand(demand, demandResult.conflicts)
        }
        this.conflicts(events, buckets.conflicts)
      })
      .finally(() => {
        for (const event of events) {
          const key = `${event.scope} ${event.step} ${event.t}`
          if (this.unsettled.get(key) === event) this.unsettled.delete(key)
        }
      })
      .catch((error) => {
        this.counters.failedBatches++
        this.options.logger.error(
          { err: error, buckets: events.length },
          'history store write failed; these buckets are missing from the history until revised',
        )
      })
    this.track(job)
  }

  /** Resolves once every write started so far (and the conflicts they caused) has settled. */
  async written(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight])
  }

  /**
   * A bucket as last written: one still on its way to the store, else the stored one (synchronous;
   * accounting revises buckets whose minutes left its ring from it, issue 13).
   */
  latest(scope: string, step: BucketStep, tMs: number): BucketRecord | undefined {
    const pending = this.unsettled.get(`${scope} ${step} ${tMs}`)
    if (pending !== undefined) {
      const { scope: _scope, step: _step, ...record } = pending
      return record
    }
    return this.options.store.get(scope, step, tMs)
  }

  /** Closed buckets of a scope from the store, at most `limit`. */
  range(scope: string, step: BucketStep, fromMs: number, toMs: number, limit: number): Promise<BucketRecord[]> {
    return this.options.store.range(scope, step, fromMs, toMs, limit)
  }

  /** Prunes the retention tiers at the site clock `nowMs` (§6); failures are logged. */
  async prune(nowMs: number): Promise<void> {
    try {
      const removed = await this.options.store.prune(nowMs)
      this.demandPeaks.forgetBefore(nowMs - this.options.store.retention.demand * 1000)
      if (removed > 0) this.options.logger.debug({ removed, nowMs }, 'history store pruned')
    } catch (error) {
      this.options.logger.error({ err: error }, 'pruning the history store failed')
    }
  }

  private count(result: WriteResult): void {
    this.counters.written += result.written
    this.counters.stale += result.stale
    for (const [reason, n] of Object.entries(result.rejected) as [RejectReason, number][]) {
      this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + n
    }
    if (Object.keys(result.rejected).length > 0) {
      this.options.logger.warn({ rejected: result.rejected }, 'history store refused buckets')
    }
  }

  private conflicts(events: readonly BucketEvent[], conflicts: Conflict[]): void {
    if (conflicts.length === 0) return
    this.counters.conflicts += conflicts.length
    const byKey = new Map<string, BucketEvent>()
    // The last event of a key in the batch is its newest.
    for (const event of events) byKey.set(`${event.scope} ${event.step} ${event.t}`, event)
    const unrevised: BucketEvent[] = []
    for (const conflict of conflicts) {
      const event = byKey.get(`${conflict.scope} ${conflict.step} ${conflict.t}`)
      if (event && !this.options.reviseAbove(event, conflict.storedRevision)) unrevised.push(event)
    }
    this.options.logger.info(
      { conflicts: conflicts.length, resentStored: unrevised.length },
      'buckets sent again above the stored revision',
    )
    if (unrevised.length > 0) this.track(this.resendStored(unrevised))
  }

  /**
   * Buckets accounting no longer holds whole (a replay moved its 1-minute history past their
   * start, so what it just sent is partial): the stored figures go out again one revision up, so
   * that every subscriber ends on them.
   */
  private async resendStored(events: BucketEvent[]): Promise<void> {
    const again: BucketEvent[] = []
    for (const event of events) {
      const [row] = await this.options.store.range(event.scope, event.step, event.t, event.t + 1, 1)
      if (row) again.push({ ...rowOf(row), scope: event.scope, step: event.step, revision: row.revision + 1 })
    }
    if (again.length === 0) return
    this.options.publish(again)
    this.write(again)
  }

  private track(job: Promise<void>): void {
    const settled = job.catch((error) => this.options.logger.error({ err: error }, 'history store re-send failed'))
    this.inFlight.add(settled)
    void settled.finally(() => this.inFlight.delete(settled))
  }

  /** Demand is not on the bus: a conflicting interval is written again above the stored revision. */
  private rewriteDemand(
    demand: { scope: string; t: number; kW: number; revision: number }[],
    conflicts: Conflict[],
  ): void {
    if (conflicts.length === 0) return
    const byKey = new Map(demand.map((row) => [`${row.scope} ${row.t}`, row]))
    const again: DemandInterval[] = []
    for (const conflict of conflicts) {
      const row = byKey.get(`${conflict.scope} ${conflict.t}`)
      if (row) again.push({ ...row, revision: conflict.storedRevision + 1 })
    }
    this.demandPeaks.changed(again)
    const job = this.options.store
      .writeDemand(again)
      .finally(() => this.demandPeaks.changed(again))
      .then((result) => this.count(result))
    this.track(job)
  }
}
