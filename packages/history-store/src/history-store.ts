// The embedded history of closed buckets and 15-minute demand (CONTRACT.md §5 `buckets`, §6
// `GET /api/v1/energy` and `GET /api/v1/reports`), in the data directory, with no server to run.
//
// Why LMDB (lmdb-js), measured in docs/decisions.md "History store": a B+tree whose byte order is
// (scope, step, start) for 15m/1h/1d (codec.ts; 1m is time-major, why is there), so a month of one
// line's quarters is one seek and 2,880 sequential rows read straight from the memory map (a columnar store scans unless rows are ordered that way, and bucket
// rows arrive ordered by time); commits are copy-on-write with the meta page written last, so a
// process killed at any instant reopens at the last commit, and lmdb-js resolves a write's promise
// only once its commit is flushed to disk; the binary ships inside the registry package
// (@lmdb/lmdb-<platform>), no compiler.
//
// How it stays off the event loop: lmdb-js commits on its own thread; the main thread only encodes
// rows, compares revisions with a synchronous read of the memory map (about a microsecond) and
// queues puts, yielding to the event loop every CHUNK rows, so a 30,000-row minute never holds it
// for more than a few milliseconds. Reads yield the same way.
//
// Revisions only go up: a row is stored only when its key holds nothing or a lower revision. Writes
// (and pruning) go through one queue, so each batch compares against everything before it; a
// journal replayed after a restore therefore never lowers a bucket. Rows older than a kind's
// retention are refused once pruned past (`expired`), so a replay cannot bring pruned rows back.
//
// One writer: one process opens the store for writing (the processor that owns the buckets). LMDB lets other
// processes read the same files.

import type { BucketStep } from '@plantwatt/contract'
import { BUCKET_STEPS } from '@plantwatt/contract'
import { type Database, open, type RootDatabase } from 'lmdb'
import {
  decodeBucket,
  decodeDemand,
  encodeBucket,
  encodeDemand,
  encodeKey,
  encodeMinuteKey,
  KEY_BYTES,
  KIND_CODE,
  MAX_MINUTE,
  MAX_REVISION,
  minuteOfKey,
  minuteOfMinuteKey,
  revisionOf,
  sameFigures,
} from './codec.ts'
import { KINDS, type Kind, keptFromMinute, type Retention, resolveRetention } from './retention.ts'
import type { BucketRecord, DemandInterval, DemandRecord, RejectReason, StoredBucket, WriteResult } from './types.ts'

export interface HistoryStoreOptions {
  /** Directory of the store's files (created if missing), e.g. `<data-dir>/history`. */
  path: string
  /** The plant's `maxAgeS` (§7): 1-minute buckets are kept at least this long. */
  maxAgeS: number
  /** Seconds kept behind the site clock per kind; defaults in retention.ts (§6). */
  retention?: Partial<Retention>
  /**
   * Rows waiting in the write queue above which `write` refuses a batch (stated bound: a writer
   * that outruns the disk gets an error to act on, not unbounded memory). Default 2,000,000, about
   * a minute of a 40,000-device plant's rows at 70 times real time.
   */
  maxQueuedRows?: number
}

/** Longest scope path of the plant model (§1: four ids of at most 49 characters). */
export const MAX_SCOPE_LENGTH = 4 * 49 + 3
/** Rows handled between two yields to the event loop (about 2 ms of work). */
const CHUNK = 1_000
const DEFAULT_MAX_QUEUED_ROWS = 2_000_000

export class HistoryQueueFullError extends Error {
  constructor(queued: number, bound: number) {
    super(`history store write queue holds ${queued} rows, bound ${bound}: the disk is behind`)
    this.name = 'HistoryQueueFullError'
  }
}

export interface HistoryStoreStats {
  /** Bytes of pages in use (the B+tree), what the rows cost on disk. */
  usedBytes: number
  /** Bytes of the data file (LMDB grows it ahead of use, and reuses freed pages). */
  fileBytes: number
  /** Rows held, buckets and demand intervals. */
  entries: number
  /** Bytes of pages in use by the 1-minute tier and by the 15m/1h/1d/demand tiers. */
  minuteTierBytes: number
  coarseTierBytes: number
  scopes: number
}

export interface Counters {
  written: number
  stale: number
  rejected: Record<RejectReason, number>
  pruned: number
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

interface Pending {
  db: Database<Buffer, Buffer>
  key: Buffer
  scope: string
  kind: Kind
  t: number
  revision: number
  value: () => Buffer
}

export class HistoryStore {
  readonly retention: Retention
  readonly counters: Counters = {
    written: 0,
    stale: 0,
    rejected: { bad_scope: 0, bad_step: 0, bad_time: 0, bad_revision: 0, bad_figure: 0, expired: 0 },
    pruned: 0,
  }
  private readonly root: RootDatabase
  private readonly rows: Database<Buffer, Buffer>
  /** 1-minute buckets, time-major keys (codec.ts). */
  private readonly minutes: Database<Buffer, Buffer>
  private readonly scopeIds: Database<number, string>
  private readonly meta: Database<number, string>
  private readonly ids = new Map<string, number>()
  private nextId = 0
  /** First minute still accepted per kind: raised by `prune`, persisted in `meta`. */
  private readonly keptFrom: Record<Kind, number>
  private tail: Promise<unknown> = Promise.resolve()
  private queued = 0
  private readonly maxQueuedRows: number
  private closed = false

  constructor(options: HistoryStoreOptions) {
    this.retention = resolveRetention(options.retention, options.maxAgeS)
    this.maxQueuedRows = options.maxQueuedRows ?? DEFAULT_MAX_QUEUED_ROWS
    this.root = open({ path: options.path, maxDbs: 4, compression: false, cache: false })
    this.rows = this.root.openDB<Buffer, Buffer>({ name: 'rows', keyEncoding: 'binary', encoding: 'binary' })
    this.minutes = this.root.openDB<Buffer, Buffer>({ name: 'minutes', keyEncoding: 'binary', encoding: 'binary' })
    this.scopeIds = this.root.openDB<number, string>({ name: 'scopes', encoding: 'ordered-binary' })
    this.meta = this.root.openDB<number, string>({ name: 'meta', encoding: 'ordered-binary' })
    for (const { key, value } of this.scopeIds.getRange({})) {
      this.ids.set(key, value)
      if (value >= this.nextId) this.nextId = value + 1
    }
    this.keptFrom = { '1m': 0, '15m': 0, '1h': 0, '1d': 0, demand: 0 }
    for (const kind of KINDS) this.keptFrom[kind] = this.meta.get(`keptFrom:${kind}`) ?? 0
  }

  /** Rows waiting in the write queue. */
  get queuedRows(): number {
    return this.queued
  }

  /**
   * Stores a batch of buckets, each only where it raises the stored revision. Resolves once every
   * stored row is committed and flushed to disk: what it acknowledges survives a kill -9 or a
   * power cut. Bad rows are counted in the result, never thrown.
   */
  write(batch: readonly StoredBucket[]): Promise<WriteResult> {
    return this.enqueue(batch.length, () => this.writeBuckets(batch))
  }

  /** Stores 15-minute demand intervals, revisions only going up as for buckets. */
  writeDemand(batch: readonly DemandInterval[]): Promise<WriteResult> {
    return this.enqueue(batch.length, () => this.writeDemandNow(batch))
  }

  /**
   * Buckets of `scope` and `step` with fromMs ≤ t < toMs, ordered by t, at most `limit` (§6 answers
   * at most 100,000: ask for limit + 1 to know that a range has more).
   */
  async range(scope: string, step: BucketStep, fromMs: number, toMs: number, limit: number): Promise<BucketRecord[]> {
    if (!BUCKET_STEPS.includes(step)) throw new RangeError(`unknown step ${String(step)}`)
    const out: BucketRecord[] = []
    await this.scan(scope, step, fromMs, toMs, limit, (t, value) => out.push(decodeBucket(t, value)))
    return out
  }

  /**
   * One bucket as committed, undefined when none (a synchronous read of the memory map, about a
   * microsecond): the processor revises a bucket whose minutes it no longer holds from it.
   */
  get(scope: string, step: BucketStep, tMs: number): BucketRecord | undefined {
    const id = this.ids.get(scope)
    const minute = this.minuteOf(tMs)
    if (id === undefined || minute === undefined || !BUCKET_STEPS.includes(step)) return undefined
    const value =
      step === '1m'
        ? this.minutes.getBinaryFast(encodeMinuteKey(id, minute))
        : this.rows.getBinaryFast(encodeKey(id, step, minute))
    return value === undefined ? undefined : decodeBucket(tMs, value)
  }

  /** Demand intervals of `scope` with fromMs ≤ t < toMs, ordered by t, at most `limit`. */
  async demand(scope: string, fromMs: number, toMs: number, limit: number): Promise<DemandRecord[]> {
    const out: DemandRecord[] = []
    await this.scan(scope, 'demand', fromMs, toMs, limit, (t, value) => out.push(decodeDemand(t, value)))
    return out
  }

  /** The highest demand interval of `scope` with fromMs ≤ t < toMs (§6 reports' peakKW/peakAt). */
  async peakDemand(scope: string, fromMs: number, toMs: number): Promise<DemandRecord | null> {
    let peak: DemandRecord | null = null
    await this.scan(scope, 'demand', fromMs, toMs, Number.POSITIVE_INFINITY, (t, value) => {
      const row = decodeDemand(t, value)
      if (peak === null || row.kW > peak.kW) peak = row
    })
    return peak
  }

  /**
   * Deletes what the retention tiers no longer keep at site clock `nowMs` and refuses such rows
   * from now on. Returns the rows deleted. Runs in the write queue, yielding like a write.
   */
  prune(nowMs: number): Promise<number> {
    return this.enqueue(0, () => this.pruneNow(nowMs))
  }

  stats(): HistoryStoreStats {
    const s = this.root.getStats() as { pageSize: number; lastPageNumber: number }
    let usedPages = 0
    let entries = 0
    const tierPages = new Map<unknown, number>()
    for (const db of [this.rows, this.minutes, this.scopeIds, this.meta]) {
      const d = db.getStats() as {
        treeBranchPageCount: number
        treeLeafPageCount: number
        overflowPages: number
        entryCount: number
      }
      const pages = d.treeBranchPageCount + d.treeLeafPageCount + d.overflowPages
      usedPages += pages
      tierPages.set(db, pages)
      if (db === this.rows || db === this.minutes) entries += d.entryCount
    }
    return {
      usedBytes: usedPages * s.pageSize,
      fileBytes: (s.lastPageNumber + 1) * s.pageSize,
      entries,
      minuteTierBytes: (tierPages.get(this.minutes) ?? 0) * s.pageSize,
      coarseTierBytes: (tierPages.get(this.rows) ?? 0) * s.pageSize,
      scopes: this.ids.size,
    }
  }

  /** Waits for queued writes, then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.tail.catch(() => undefined)
    await this.root.close()
  }

  // -------------------------------------------------------------------------------------------

  private enqueue<T>(rows: number, job: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('history store is closed'))
    if (this.queued + rows > this.maxQueuedRows && rows > 0) {
      return Promise.reject(new HistoryQueueFullError(this.queued, this.maxQueuedRows))
    }
    this.queued += rows
    const run = this.tail.then(job).finally(() => {
      this.queued -= rows
    })
    this.tail = run.catch(() => undefined)
    return run
  }

  private reject(result: WriteResult, reason: RejectReason): void {
    result.rejected[reason] = (result.rejected[reason] ?? 0) + 1
    this.counters.rejected[reason]++
  }

  /** The minute of a bucket start, or undefined when it is not a whole minute in range. */
  private minuteOf(t: number): number | undefined {
    if (!Number.isSafeInteger(t) || t < 0 || t % 60_000 !== 0) return undefined
    const minute = t / 60_000
    return minute <= MAX_MINUTE ? minute : undefined
  }

  private checkCommon(
    row: { scope: unknown; t: unknown; revision: unknown },
    kind: Kind,
    result: WriteResult,
  ): number | undefined {
    const { scope, revision } = row
    if (typeof scope !== 'string' || scope.length === 0 || scope.length > MAX_SCOPE_LENGTH) {
      this.reject(result, 'bad_scope')
      return undefined
    }
    const minute = this.minuteOf(row.t as number)
    if (minute === undefined) {
      this.reject(result, 'bad_time')
      return undefined
    }
    if (!Number.isSafeInteger(revision) || (revision as number) < 0 || (revision as number) > MAX_REVISION) {
      this.reject(result, 'bad_revision')
      return undefined
    }
    if (minute < this.keptFrom[kind]) {
      this.reject(result, 'expired')
      return undefined
    }
    return minute
  }

  private async writeBuckets(batch: readonly StoredBucket[]): Promise<WriteResult> {
    const result: WriteResult = { written: 0, stale: 0, rejected: {}, conflicts: [] }
    const pending = new Map<string, Pending>()
    let n = 0
    for (const row of batch) {
      if (++n % CHUNK === 0) await yieldToLoop()
      if (!BUCKET_STEPS.includes(row.step)) {
        this.reject(result, 'bad_step')
        continue
      }
      const minute = this.checkCommon(row, row.step, result)
      if (minute === undefined) continue
      if (!figuresAreFinite(row)) {
        this.reject(result, 'bad_figure')
        continue
      }
      this.collect(pending, row.scope, row.step, minute, row.revision, () => encodeBucket(bucketRecord(row)), result)
    }
    await this.apply(pending, result)
    return result
  }

  private async writeDemandNow(batch: readonly DemandInterval[]): Promise<WriteResult> {
    const result: WriteResult = { written: 0, stale: 0, rejected: {}, conflicts: [] }
    const pending = new Map<string, Pending>()
    let n = 0
    for (const row of batch) {
      if (++n % CHUNK === 0) await yieldToLoop()
      const minute = this.checkCommon(row, 'demand', result)
      if (minute === undefined) continue
      if (typeof row.kW !== 'number' || !Number.isFinite(row.kW)) {
        this.reject(result, 'bad_figure')
        continue
      }
      const record = { t: row.t, kW: row.kW, revision: row.revision }
      this.collect(pending, row.scope, 'demand', minute, row.revision, () => encodeDemand(record), result)
    }
    await this.apply(pending, result)
    return result
  }

  /** Keeps the highest revision of each key in the batch (the last of equal ones: later is newer). */
  private collect(
    pending: Map<string, Pending>,
    scope: string,
    kind: Kind,
    minute: number,
    revision: number,
    value: () => Buffer,
    result: WriteResult,
  ): void {
    const id = this.idOf(scope)
    const name = `${id}:${KIND_CODE[kind]}:${minute}`
    const earlier = pending.get(name)
    if (earlier !== undefined) {
      result.stale++
      this.counters.stale++
      if (revision < earlier.revision) return
    }
    const key = kind === '1m' ? encodeMinuteKey(id, minute) : encodeKey(id, kind, minute)
    pending.set(name, {
      db: kind === '1m' ? this.minutes : this.rows,
      key,
      scope,
      kind,
      t: minute * 60_000,
      revision,
      value,
    })
  }

  /** Compares each row with the stored revision and queues the puts; resolves once flushed. */
  private async apply(pending: Map<string, Pending>, result: WriteResult): Promise<void> {
    let last: Promise<unknown> | undefined
    let n = 0
    for (const row of pending.values()) {
      const stored = row.db.getBinaryFast(row.key)
      const storedRevision = stored === undefined ? -1 : revisionOf(stored)
      if (stored !== undefined && storedRevision >= row.revision) {
        result.stale++
        this.counters.stale++
        if (!sameFigures(stored, row.value())) {
          result.conflicts.push({ scope: row.scope, step: row.kind, t: row.t, storedRevision })
        }
      } else {
        last = row.db.put(row.key, row.value())
        result.written++
        this.counters.written++
      }
      if (++n % CHUNK === 0) await yieldToLoop()
    }
    if (last !== undefined) await last
    await this.root.flushed
  }

  /** The id of a scope, assigned (and queued for storing) on first sight. */
  private idOf(scope: string): number {
    let id = this.ids.get(scope)
    if (id === undefined) {
      id = this.nextId++
      this.ids.set(scope, id)
      // Same write queue and commit batch as the rows that use it: never a row without its name.
      void this.scopeIds.put(scope, id)
    }
    return id
  }

  private async scan(
    scope: string,
    kind: Kind,
    fromMs: number,
    toMs: number,
    limit: number,
    take: (t: number, value: Uint8Array) => void,
  ): Promise<void> {
    const id = this.ids.get(scope)
    if (id === undefined || !(limit > 0) || !(toMs > fromMs)) return
    let from = Math.max(0, Math.ceil(fromMs / 60_000))
    const to = Math.ceil(toMs / 60_000)
    if (from > MAX_MINUTE) return
    if (kind === '1m') return this.scanMinutes(id, from, to, limit, take)
    const end = to > MAX_MINUTE ? kindEnd(id, kind) : encodeKey(id, kind, to)
    let left = limit
    for (;;) {
      const chunk = Math.min(left, CHUNK * 5)
      let got = 0
      let lastMinute = -1
      for (const { key, value } of this.rows.getRange({ start: encodeKey(id, kind, from), end, limit: chunk })) {
        lastMinute = minuteOfKey(key)
        take(lastMinute * 60_000, value)
        got++
      }
      left -= got
      if (got < chunk || left <= 0 || lastMinute >= MAX_MINUTE) return
      from = lastMinute + 1
      // A 100,000-row answer is read in slices so that it never holds the event loop long.
      await yieldToLoop()
    }
  }

  /** 1-minute buckets of one scope: one point read per minute between the first and last held. */
  private async scanMinutes(
    id: number,
    fromMinute: number,
    toMinute: number,
    limit: number,
    take: (t: number, value: Uint8Array) => void,
  ): Promise<void> {
    const first = this.minuteBound(false)
    const last = this.minuteBound(true)
    if (first === undefined || last === undefined) return
    const from = Math.max(fromMinute, first, this.keptFrom['1m'])
    const to = Math.min(toMinute, last + 1)
    let found = 0
    for (let m = from; m < to && found < limit; m++) {
      const value = this.minutes.getBinaryFast(encodeMinuteKey(id, m))
      if (value !== undefined) {
        take(m * 60_000, value)
        found++
      }
      if ((m - from) % (CHUNK * 5) === CHUNK * 5 - 1) await yieldToLoop()
    }
  }

  /** The first (or last) minute held in the 1-minute tier. */
  private minuteBound(last: boolean): number | undefined {
    for (const key of this.minutes.getKeys({ reverse: last, limit: 1 })) return minuteOfMinuteKey(key)
    return undefined
  }

  private async pruneNow(nowMs: number): Promise<number> {
    if (!Number.isFinite(nowMs)) throw new RangeError(`prune needs a site clock in ms, got ${nowMs}`)
    let removed = 0
    let last: Promise<unknown> | undefined
    let n = 0
    for (const kind of KINDS) {
      const keep = keptFromMinute(this.retention, kind, nowMs)
      if (keep <= this.keptFrom[kind]) continue
      // Refuse older rows first (persisted with the deletions), so a replay cannot resurrect them.
      this.keptFrom[kind] = keep
      last = this.meta.put(`keptFrom:${kind}`, keep)
      if (kind === '1m') {
        // Time-major: what is pruned is the start of the tree, read a slice at a time.
        for (;;) {
          const keys: Buffer[] = []
          for (const key of this.minutes.getKeys({ end: encodeMinuteKey(0, keep), limit: CHUNK }))
            keys.push(Buffer.from(key))
          for (const key of keys) last = this.minutes.remove(key)
          removed += keys.length
          if (keys.length < CHUNK) break
          await last
          await yieldToLoop()
        }
        continue
      }
      for (const id of this.ids.values()) {
        // The keys of one scope are read first: an open iterator must not span a yield.
        const keys: Buffer[] = []
        for (const key of this.rows.getKeys({ start: encodeKey(id, kind, 0), end: encodeKey(id, kind, keep) })) {
          keys.push(Buffer.from(key))
        }
        for (const key of keys) {
          last = this.rows.remove(key)
          removed++
          if (++n % CHUNK === 0) await yieldToLoop()
        }
        if (++n % CHUNK === 0) await yieldToLoop()
      }
    }
    if (last !== undefined) await last
    await this.root.flushed
    this.counters.pruned += removed
    return removed
  }
}

/** The first key after every key of (id, kind): the end of a range reaching the last minute. */
function kindEnd(id: number, kind: Kind): Buffer {
  const key = Buffer.alloc(KEY_BYTES)
  key.writeUInt32BE(id, 0)
  key.writeUInt8(KIND_CODE[kind] + 1, 4)
  return key
}

const FIGURES = ['energyWh', 'co2G', 'co2MarketG', 'idleWh', 'peakW'] as const
const OPTIONAL_FIGURES = ['outputUnits', 'idleCo2G', 'pvWh', 'savedWh', 'savedCo2G'] as const

function figuresAreFinite(row: StoredBucket): boolean {
  for (const name of FIGURES) if (typeof row[name] !== 'number' || !Number.isFinite(row[name])) return false
  for (const name of OPTIONAL_FIGURES) {
    const v = row[name]
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) return false
  }
  return true
}

function bucketRecord(row: StoredBucket): BucketRecord {
  const record: BucketRecord = {
    t: row.t,
    energyWh: row.energyWh,
    co2G: row.co2G,
    co2MarketG: row.co2MarketG,
    idleWh: row.idleWh,
    peakW: row.peakW,
    revision: row.revision,
  }
  for (const name of OPTIONAL_FIGURES) if (row[name] !== undefined) record[name] = row[name]
  return record
}
