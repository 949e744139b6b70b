// The embedded history of closed buckets and 15-minute demand (issue 13): interface only; the
// LMDB-backed implementation follows in the next commit.

import type { BucketStep } from '@plantwatt/contract'
import { type Retention, resolveRetention } from './retention.ts'
import type { BucketRecord, DemandInterval, DemandRecord, RejectReason, StoredBucket, WriteResult } from './types.ts'

export interface HistoryStoreOptions {
  path: string
  maxAgeS: number
  retention?: Partial<Retention>
  maxQueuedRows?: number
}

export interface HistoryStoreStats {
  usedBytes: number
  fileBytes: number
  entries: number
  scopes: number
}

export interface Counters {
  written: number
  stale: number
  rejected: Record<RejectReason, number>
  pruned: number
}

const notYet = () => Promise.reject(new Error('history store not implemented'))

export class HistoryStore {
  readonly retention: Retention
  readonly counters: Counters = {
    written: 0,
    stale: 0,
    rejected: { bad_scope: 0, bad_step: 0, bad_time: 0, bad_revision: 0, bad_figure: 0, expired: 0 },
    pruned: 0,
  }
  constructor(options: HistoryStoreOptions) {
    this.retention = resolveRetention(options.retention, options.maxAgeS)
  }
  write(_batch: readonly StoredBucket[]): Promise<WriteResult> {
    return notYet()
  }
  writeDemand(_batch: readonly DemandInterval[]): Promise<WriteResult> {
    return notYet()
  }
  range(_scope: string, _step: BucketStep, _fromMs: number, _toMs: number, _limit: number): Promise<BucketRecord[]> {
    return notYet()
  }
  demand(_scope: string, _fromMs: number, _toMs: number, _limit: number): Promise<DemandRecord[]> {
    return notYet()
  }
  peakDemand(_scope: string, _fromMs: number, _toMs: number): Promise<DemandRecord | null> {
    return notYet()
  }
  prune(_nowMs: number): Promise<number> {
    return notYet()
  }
  stats(): HistoryStoreStats {
    throw new Error('history store not implemented')
  }
  async close(): Promise<void> {}
}
