import { rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setImmediate } from 'node:timers/promises'
import { type BucketEvent, type BucketRow, StalledClocks } from '@plantwatt/accounting'
import {
  ALERT_ACK_TOPIC,
  ALERTS_SYNC_TOPIC,
  ALERTS_TOPIC,
  type AlertAckRequest,
  type AlertEvents,
  type BucketUpdate,
  type Bus,
  bucketsTopic,
  CARBON_TOPIC,
  type CarbonRequest,
  decodeMessage,
  encodeMessage,
  LIVE_SYNC_TOPIC,
  type SyncRequest,
  serveQueries,
  syncAnswerMessages,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert, BucketStep, DecodedPack } from '@plantwatt/contract'
import { ACK_FILTER, isValidCarbon, UPLINK_FILTER } from '@plantwatt/contract'
import type { Sequenced } from '@plantwatt/detection'
import { alertPoint, bucketPoint, type HistoryPoint, type HistorySink } from '@plantwatt/history'
import type { HistoryStore } from '@plantwatt/history-store'
import {
  type DeviceCounters,
  type PipelineOptions,
  type PipelineSnapshot,
  type PipelineStats,
  ReadingPipeline,
  type RestoredPipelineState,
} from '@plantwatt/pipeline'
import type { PlantIndex, ScopeNode } from '@plantwatt/plant'
import { type JournalRecord, timeoutAfterIo } from '@plantwatt/runtime'
import type { TunerOptions } from '@plantwatt/tuning'
import type { Logger } from 'pino'
import {
  CheckpointFile,
  decodeState,
  detectionArrays,
  deviceArrays,
  encodeReadingsState,
  encodeStateBlob,
  type ProcessorCheckpoint,
  READINGS_STATE,
} from './checkpoint-file.ts'
import { energyAnswer } from './energy-query.ts'
import { HistoryStoreSink } from './history-sink.ts'
import { LivePublisher, type LivePublisherStats, pipelineLiveSource } from './live-publisher.ts'
import { ReportQuery } from './report-query.ts'
import { type ColumnPut, ProcessorStateStore } from './state-store.ts'
import type { TuningStats } from './tuning-loop.ts'
import { TuningService } from './tuning-service.ts'

export type { DeviceCounters }

/** What the last checkpoint wrote (Processor.lastCheckpoint). */
export interface CheckpointWritten {
  /** Bytes of the state: blob and the arrays beside it. */
  bytes: number
  columns: number
  columnBytes: number
  /** Readings in the reading log's chunks written. */
  readings: number
  /** Wall time of the checkpoint, s. */
  seconds: number
  /**
   * Bytes written per part (columns uncompressed): `readings` the reading log's chunks, `series`
   * the series' state beside them, `devices` the per-device counters, `blob` the rest of the state.
   */
  parts: {
    columns: number
    readings: number
    detection: number
    blob: number
    output: number
    devices: number
    series: number
  }
  /**
   * Milliseconds the event loop was held: the longest synchronous stretch (a snapshot with its
   * encoding, or handing the writes to the store) and their sum.
   */
  heldMs: {
    max: number
    total: number
    /** The longest of each kind: the snapshot's turn, a later turn of the capture, handing the writes to the store. */
    snapshot: number
    slice: number
    store: number
  }
  /** Turns of the event loop the snapshot's encoding took (the snapshot's and the captures', issue 13). */
  slices: number
}

export interface ProcessorOptions {
  plant: PlantIndex
  bus: Bus
  logger: Logger
  /** Wall clock in epoch ms; only the `future` rejection, relative SenML times and cadences use it. */
  now?: () => number
  /**
   * How often changed figures, closed buckets and alerts go out, ms. Shorter than the one-second
   * frame cadence of CONTRACT.md §5 (which the gateway enforces per subscription) so that a change
   * waits little before its frame.
   */
  publishIntervalMs?: number
  /**
   * Where uplinks come from. With a journal (`plantwatt up`), the broker made each one durable
   * before acknowledging it, and the processor replays what its checkpoint does not cover; without
   * one, uplinks come from the bus.
   */
  journal?: JournalSource
  /**
   * Several journals, one per worker process of `plantwatt up --workers N` (issue 16), by slot
   * number; `journal`, if also given, is slot 0. The checkpoint records each slot's position.
   */
  journals?: ReadonlyMap<number, JournalSource>
  /**
   * Where the checkpoint lives: the state store (state-store.ts) is the directory `stateDir`, by
   * default `state` next to this path (`<data-dir>/processor/state`); a file at this path is a
   * checkpoint of an older version, restored once and then removed. None: state lives in memory only.
   */
  checkpointPath?: string
  /** The state store's directory (default: `state` next to checkpointPath). */
  stateDir?: string
  /** How often the checkpoint is written, ms (default 60 s); also at stop. */
  checkpointIntervalMs?: number
  /**
   * About how long one turn of a checkpoint's encoding may hold the event loop, ms (default 2):
   * detection's state is copied and encoded over as many turns as it takes (0: one equipment a turn).
   */
  checkpointSliceMs?: number
  /** History store (InfluxDB); buckets and alert events go there as points. */
  history?: HistorySink
  /**
   * The embedded history store (<data-dir>/history, issue 13): closed buckets are written there and
   * GET /api/v1/energy reads them back (§6). Opened and closed by the caller, after stop().
   */
  historyStore?: HistoryStore
  /** How often the store's retention tiers are pruned at the earliest site clock, ms (default 10 min). */
  historyPruneIntervalMs?: number
  pipeline?: PipelineOptions
  /** The setpoint tuners' options (issue 15, docs/tuning.md); the tuned equipment come from the plant. */
  tuning?: TunerOptions
}

/**
 * A durable record as a source hands it over: a device's uplink may come decoded already, by the
 * broker worker that received it (uplink-decode.ts); its raw payload is then in that worker's
 * journal, which is what a replay reads.
 */
export interface SourceRecord extends JournalRecord {
  decoded?: DecodedPack
}

/**
 * Where durable uplinks come from: an IngestJournal in this process, or (`up --workers N`) a
 * worker's journal whose records reach this process in batches. Records of one source come in
 * sequence order; `release` lets the source drop what a checkpoint covers.
 */
export interface JournalSource {
  replay(afterSeq: number): AsyncIterable<JournalRecord>
  onDurable: (record: SourceRecord) => void
  release(seq: number): Promise<void>
}

/**
 * The records after each slot's position, all slots merged in receipt-time order (ties: the
 * lower slot first); each slot's own records stay in sequence order.
 */
async function* mergeByReceipt(
  journals: ReadonlyMap<number, JournalSource>,
  positions: ReadonlyMap<number, number>,
): AsyncGenerator<{ slot: number; record: JournalRecord }> {
  const heads: { slot: number; iterator: AsyncIterator<JournalRecord>; record: JournalRecord }[] = []
  for (const [slot, journal] of [...journals].sort(([a], [b]) => a - b)) {
    const iterator = journal.replay(positions.get(slot) ?? 0)[Symbol.asyncIterator]()
    const first = await iterator.next()
    if (!first.done) heads.push({ slot, iterator, record: first.value })
  }
  while (heads.length > 0) {
    let next = 0
    for (let k = 1; k < heads.length; k++) {
      if (heads[k]!.record.receivedAtMs < heads[next]!.record.receivedAtMs) next = k
    }
    const head = heads[next]!
    yield { slot: head.slot, record: head.record }
    const following = await head.iterator.next()
    if (following.done) heads.splice(next, 1)
    else head.record = following.value
  }
}

/** Bucket events per bus message: a 40,000-device plant closes tens of thousands a minute. */
const BUCKETS_PER_MESSAGE = 2000
/** Alert events per message of a sync answer (the whole held log is 10,000 events). */

/**
 * The stream processor's composition root: uplinks from the journal (or the bus) go through the
 * reading pipeline; live figures, closed buckets and alert events go back on the bus and to the
 * history store; the state is checkpointed to the data directory, and restored at start.
 */
export class Processor {
  private pipeline!: ReadingPipeline
  private tuningService!: TuningService
  /** Live figures of the watched scopes to the gateways (issue 14). */
  private live!: LivePublisher
  private readonly now: () => number
  private readonly unsubscribes: Unsubscribe[] = []
  private stateStore: ProcessorStateStore | undefined
  /** The next checkpoint writes every column the ring holds (first after a legacy restore, or a failed write). */
  private fullNext = false
  /** A legacy checkpoint file to remove once the state store holds a checkpoint. */
  private legacyFile: string | undefined
  private publishTimer: NodeJS.Timeout | undefined
  private checkpointTimer: NodeJS.Timeout | undefined
  private pruneTimer: NodeJS.Timeout | undefined
  /** Closed buckets to the embedded history store, when there is one. */
  readonly historySink: HistoryStoreSink | undefined
  /** Per journal slot, the last record applied to the pipeline. */
  private readonly journalSeqs = new Map<number, number>()
  private readonly journals: ReadonlyMap<number, JournalSource>
  private checkpointing: Promise<void> | undefined
  private nextCheckpoint: Promise<void> | undefined
  private started = false
  private publishIntervalMs: number
  /** Bucket events sent again with a higher revision (late readings changed them). */
  bucketRevisions = 0
  /** accounting's beyondHistory as last logged. */
  private beyondLogged = 0
  /** Sites whose clock stands still: their held revisions go out (on processing time, stalled-clocks.ts). */
  private readonly stalledClocks = new StalledClocks()
  /**
   * The last checkpoint written: bytes of its state (blob and arrays), columns and their bytes
   * (uncompressed), and bytes per part (columns, reading log chunks, detection, the rest's blob).
   */
  lastCheckpoint: CheckpointWritten | undefined
  /** Checkpoints that failed to write (plantwatt_checkpoint_failures_total). */
  checkpointFailures = 0
  /** Wall times (s) of checkpoints written since metrics last took them (bounded). */
  private checkpointDurations: number[] = []

  constructor(private readonly options: ProcessorOptions) {
    this.now = options.now ?? Date.now
    this.publishIntervalMs = options.publishIntervalMs ?? 200
    const journals = new Map(options.journals ?? [])
    if (options.journal) journals.set(0, options.journal)
    this.journals = journals
    this.historySink = options.historyStore
      ? new HistoryStoreSink({
          store: options.historyStore,
          logger: options.logger,
          reviseAbove: (event, storedRevision) =>
            this.pipeline.accounting.reviseAbove(event.scope, event.step, event.t, storedRevision),
          publish: (events) => this.publishBuckets(events),
        })
      : undefined
  }

  get stats(): PipelineStats {
    return this.pipeline.stats
  }

  get devices(): ReadonlyMap<string, DeviceCounters> {
    return this.pipeline.devices
  }

  /** The tuning loop (issue 15), for tests (read only); after start(). */
  get tuning() {
    return this.tuningService.loop
  }

  /** The tuning loop's counters (metrics), zeros before start(). */
  get tuningStats(): TuningStats {
    return (
      this.tuningService?.loop.stats ?? { commands: 0, events: 0, acks: 0, acksRejected: 0, late: 0, acksBehind: 0 }
    )
  }

  /** The domain state, for the HTTP API and tests (read only). */
  get state(): ReadingPipeline {
    return this.pipeline
  }

  /** Per journal slot, the last record applied (a restarted worker replays its journal after it). */
  journalPositions(): ReadonlyMap<number, number> {
    return new Map(this.journalSeqs)
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const { bus, logger } = this.options
    const restored = await this.restore()
    this.pipeline = new ReadingPipeline(this.options.plant, this.options.pipeline, restored?.pipeline)
    const mismatched = this.pipeline.accounting.restoreMismatches
    if (mismatched > 0) {
      // Only a reading log chunk missing from the store does this: the series keep what was found.
      logger.warn({ series: mismatched }, 'retained readings restored short of what the checkpoint recorded')
    }
    this.tuningService = new TuningService({
      plant: this.options.plant,
      bus,
      logger,
      pipeline: this.pipeline,
      tuner: this.options.tuning,
      eventCapacity: this.options.pipeline?.detection?.eventLogCapacity,
      restored: restored?.tuning,
    })
    this.live = new LivePublisher({
      plant: this.options.plant,
      bus,
      logger,
      now: this.now,
      // A site's batch the moment its second is up, after that turn's I/O (runtime timeoutAfterIo).
      schedule: timeoutAfterIo,
      source: {
        ...pipelineLiveSource(this.pipeline),
        figures: (node) => this.tuningService.withSavedToday(node.scope, this.pipeline.figures(node)),
      },
    })
    // Checkpoints before journal slots name only slot 0's position (`journalSeq`).
    this.journalSeqs.set(0, restored?.journalSeq ?? 0)
    for (const [slot, seq] of Object.entries(restored?.journalSeqs ?? {})) this.journalSeqs.set(Number(slot), seq)
    if (restored) {
      logger.info(
        { journalSeqs: Object.fromEntries(this.journalSeqs), savedAt: restored.savedAt },
        'processor state restored',
      )
    }
    this.beyondLogged = this.pipeline.accounting.counters.beyondHistory
    const { stateStore, historySink } = this
    if (stateStore && historySink) {
      // Late readings for minutes older than the ring (issue 13): their columns from the state
      // store, the buckets they revise as last written to the history store.
      this.pipeline.accounting.cold = {
        column: (site, minute) => stateStore.column(site, minute),
        bucket: (scope, step, tMs) => historySink.latest(scope, step, tMs),
      }
    }

    if (this.journals.size > 0) {
      // What was acknowledged to devices after the checkpoint: applied again before anything new
      // (the broker does not listen yet), the slots merged by receipt time, so that readings of
      // devices on different workers meet the site clock in about the order they did live.
      let replayed = 0
      for await (const { slot, record } of mergeByReceipt(this.journals, this.journalSeqs)) {
        this.applyRecord(slot, record)
        replayed++
      }
      if (replayed > 0) {
        logger.info({ replayed, journalSeqs: Object.fromEntries(this.journalSeqs) }, 'journal replayed')
      }
      for (const [slot, journal] of this.journals) journal.onDurable = (record) => this.applyRecord(slot, record)
    } else {
      this.unsubscribes.push(
        await bus.subscribe(UPLINK_FILTER, (topic, payload) => this.pipeline.ingest(topic, payload, this.now())),
      )
      // Split mode: acks come over the bus as readings do (CONTRACT.md §3).
      this.unsubscribes.push(
        await bus.subscribe(ACK_FILTER, (topic, payload) => this.ingest(topic, payload, this.now())),
      )
    }
    this.unsubscribes.push(await bus.subscribe(LIVE_SYNC_TOPIC, () => this.publishAll()))
    this.unsubscribes.push(...(await this.live.start()))
    this.unsubscribes.push(await bus.subscribe(ALERT_ACK_TOPIC, (_topic, payload) => this.onAck(payload)))
    this.unsubscribes.push(await bus.subscribe(ALERTS_SYNC_TOPIC, (_topic, payload) => this.onAlertsSync(payload)))
    this.unsubscribes.push(await bus.subscribe(CARBON_TOPIC, (_topic, payload) => this.onCarbon(payload)))
    this.unsubscribes.push(...(await this.tuningService.subscribe(() => this.publishEvents())))
    const withSavings = (row: BucketRow, scope: string, step: BucketStep) =>
      this.tuningService.withSavings(row, scope, step)
    const reports = new ReportQuery(
      this.options.plant,
      this.pipeline.accounting,
      this.historySink,
      withSavings,
      this.now,
    )
    this.unsubscribes.push(
      await serveQueries(
        bus,
        {
          energy: (params) => energyAnswer(this.pipeline.accounting, this.historySink, params, withSavings),
          report: (params) => reports.answer(params),
          device: (params) => this.deviceQuery(params),
          live: (params) => this.liveQuery(params),
          equipment: (params) => this.equipmentQuery(params),
          forgetNames: (params) => this.forgetNamesQuery(params),
          setpoints: (params) => this.tuningService.setpointsQuery(params),
        },
        (error) => logger.warn({ err: error }, 'bad query on the bus'),
      ),
    )
    this.startPublishTimer()
    if (this.historySink) {
      void this.pruneHistory()
      this.pruneTimer = setInterval(() => void this.pruneHistory(), this.options.historyPruneIntervalMs ?? 600_000)
      this.pruneTimer.unref()
    }
    if (this.stateStore) {
      this.checkpointTimer = setInterval(() => void this.checkpoint(), this.options.checkpointIntervalMs ?? 60_000)
      this.checkpointTimer.unref()
    }
    // Cold revisions the last checkpoint held, maybe sent before the restart: again (the store drops repeats).
    this.sendCold(this.pipeline.accounting.coldRestored())
    // A gateway that started first asked for a sync before anyone listened: answer it now.
    this.publishAll()
  }

  /**
   * How often changed figures, closed buckets and alerts go out from now on, ms (the option
   * `publishIntervalMs`). The demo's backfill (issue 17) slows it while two days of readings go
   * through in seconds: every scope's figures recomputed five times a second, for a site clock
   * racing through the hours, are a fifth of the work and nobody looks at them.
   */
  setPublishInterval(ms: number): void {
    if (!(ms > 0)) throw new RangeError(`publish interval must be positive, got ${ms}`)
    this.publishIntervalMs = ms
    if (this.publishTimer) this.startPublishTimer()
  }

  private startPublishTimer(): void {
    if (this.publishTimer) clearInterval(this.publishTimer)
    this.publishTimer = setInterval(() => this.publishChanges(), this.publishIntervalMs)
    this.publishTimer.unref()
  }

  /** Stops taking uplinks, sends what is pending, writes the checkpoint. Safe to call twice. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    if (this.publishTimer) clearInterval(this.publishTimer)
    if (this.checkpointTimer) clearInterval(this.checkpointTimer)
    if (this.pruneTimer) clearInterval(this.pruneTimer)
    this.publishTimer = undefined
    this.checkpointTimer = undefined
    this.pruneTimer = undefined
    for (const journal of this.journals.values()) journal.onDurable = () => {}
    for (const unsubscribe of this.unsubscribes.splice(0)) await unsubscribe()
    this.publishChanges()
    this.live.stop()
    await this.checkpoint()
    await this.historyWritten()
    await this.stateStore?.close()
    this.stateStore = undefined
  }

  /**
   * Opens the state store and reads the checkpoint: the state store's, else a checkpoint file of an
   * older version (restored once; the first checkpoint then writes every column and removes it). A
   * legacy file that cannot be read or does not fit the plant is refused with a logged error, and
   * the processor starts from the journal alone (never a crash over a file it can do without).
   */
  private async restore(): Promise<
    | (Omit<ProcessorCheckpoint, 'pipeline'> & { pipeline: RestoredPipelineState | ProcessorCheckpoint['pipeline'] })
    | undefined
  > {
    const { checkpointPath, logger } = this.options
    if (!checkpointPath) return undefined
    const store = new ProcessorStateStore(this.options.stateDir ?? join(dirname(checkpointPath), 'state'))
    this.stateStore = store
    const blob = store.readState()
    let legacy: ProcessorCheckpoint | undefined
    try {
      legacy = await new CheckpointFile(checkpointPath).read()
    } catch (error) {
      logger.error({ err: error, path: checkpointPath }, 'checkpoint file of an older version unreadable: not restored')
      if (blob === undefined) return undefined
    }
    if (blob !== undefined) {
      const state = decodeState(blob, (name) => store.readArray(name))
      if (legacy) {
        // A crash after the state store's first checkpoint, before the file's removal.
        this.legacyFile = checkpointPath
        logger.info({ path: checkpointPath }, 'checkpoint file of an older version superseded by the state store')
      }
      return {
        journalSeq: state.journalSeq,
        journalSeqs: state.journalSeqs,
        savedAt: state.savedAt,
        tuning: state.tuning,
        pipeline: {
          state: state.pipeline,
          column: (site, minute) => store.column(site, minute),
          readings: () => store.readingChunks(),
          outputColumn: (site, minute) => store.outputColumn(site, minute),
        },
      }
    }
    if (!legacy) return undefined
    try {
      // Built here once to know that it fits the plant; the pipeline is then built from it again.
      new ReadingPipeline(this.options.plant, this.options.pipeline, legacy.pipeline)
    } catch (error) {
      logger.error(
        { err: error, path: checkpointPath },
        'checkpoint file of an older version does not fit this plant: not restored, starting from the journal alone',
      )
      return undefined
    }
    logger.warn(
      { path: checkpointPath, journalSeq: legacy.journalSeq },
      'restoring a checkpoint file of an older version once; the state store supersedes it at the next checkpoint',
    )
    this.fullNext = true
    this.legacyFile = checkpointPath
    return legacy
  }

  /** The figures of one scope as the processor holds them now (GET /api/v1/live, tests). */
  figures(scope: ScopeNode) {
    return this.pipeline.figures(scope)
  }

  /** Live publication counters (metrics, benchmarks); zeros before start(). */
  get liveStats(): LivePublisherStats {
    return this.live?.stats ?? { batches: 0, bytes: 0, scopesSent: 0, interestMessages: 0, badInterest: 0, resyncs: 0 }
  }

  /** Scopes some gateway has live subscribers for now. */
  get watchedScopes(): number {
    return this.live?.interests.size ?? 0
  }

  /** Wall times (s) of the checkpoints written since the last call (metrics). */
  takeCheckpointDurations(): number[] {
    const taken = this.checkpointDurations
    this.checkpointDurations = []
    return taken
  }

  /**
   * Writes the checkpoint now (one at a time); the journal then drops what it covers. Asked while
   * one is being written (from an older snapshot), it writes another once that one is done, from
   * the state as it is then, so stop() never settles for a snapshot older than its call (issue 12
   * finding 2); callers meanwhile share that one.
   */
  checkpoint(): Promise<void> {
    if (!this.stateStore) return Promise.resolve()
    if (this.checkpointing) {
      this.nextCheckpoint ??= this.checkpointing.then(() => {
        this.nextCheckpoint = undefined
        return this.checkpoint()
      })
      return this.nextCheckpoint
    }
    this.checkpointing = (async () => {
      const store = this.stateStore!
      try {
        const started = this.now()
        const wallStarted = performance.now()
        const held = { max: 0, total: 0, snapshot: 0, slice: 0, store: 0 }
        const hold = (ms: number, kind: 'snapshot' | 'slice' | 'store') => {
          held[kind] = Math.max(held[kind], ms)
          held.max = Math.max(held.max, ms)
          held.total += ms
        }
        const full = this.fullNext
        this.fullNext = false
        // Columns taken by every round: a round takes only what changed since the one before.
        const columns = new Map<string, ColumnPut>()
        const outputColumns = new Map<string, ColumnPut>()
        const take = (snapshot: { columns: ColumnPut[]; outputColumns: ColumnPut[] }) => {
          for (const column of snapshot.columns) columns.set(`${column.site} ${column.minute}`, column)
          for (const column of snapshot.outputColumns) outputColumns.set(`${column.site} ${column.minute}`, column)
        }
        // The reading log's chunks of every round: each holds what was inserted since the one before.
        const readings: { gen: number; parts: Uint8Array[] }[] = []
        let readingsPruneBelow = 0
        let readingCount = 0
        const takeReadings = (chunk: PipelineSnapshot['readings']) => {
          readings.push(chunk)
          readingsPruneBelow = Math.max(readingsPruneBelow, chunk.pruneBelow)
          readingCount += chunk.readings
        }
        let slices = 0
        let snapshot = await this.snapshotWithHistoryWritten(full, started, hold)
        slices += snapshot.slices
        take(snapshot)
        takeReadings(snapshot.readings)
        // A conflict found meanwhile (after a restore) raises revisions in the live state, after the
        // snapshot: take it again so that the revisions it records are not behind the store.
        for (let round = 0; round < 3 && snapshot.conflicted; round++) {
          snapshot = await this.snapshotWithHistoryWritten(false, started, hold)
          slices += snapshot.slices
          take(snapshot)
          takeReadings(snapshot.readings)
        }
        const { journalSeqs, generation } = snapshot
        try {
          const handing = performance.now()
          const written = store.write({
            state: snapshot.state.blob,
            arrays: snapshot.state.arrays,
            columns: [...columns.values()],
            outputColumns: [...outputColumns.values()],
            pruneBefore: this.pipeline.accounting.columnFloors(),
            readings,
            readingsPruneBelow,
          })
          hold(performance.now() - handing, 'store')
          await written
        } catch (error) {
          // The columns taken are not on disk: the next checkpoint writes all the ring holds.
          this.fullNext = true
          throw error
        }
        const bytes =
          snapshot.state.blob.byteLength + Object.values(snapshot.state.arrays).reduce((n, a) => n + a.byteLength, 0)
        let columnBytes = 0
        for (const column of columns.values()) columnBytes += column.bytes.byteLength
        const seconds = (performance.now() - wallStarted) / 1000
        this.lastCheckpoint = {
          bytes,
          columns: columns.size,
          columnBytes,
          readings: readingCount,
          seconds,
          heldMs: held,
          slices,
          parts: {
            columns: columnBytes,
            readings: readings.reduce((n, chunk) => chunk.parts.reduce((m, part) => m + part.byteLength, n), 0),
            detection: Object.entries(snapshot.state.arrays)
              .filter(([name]) => name.startsWith('detection'))
              .reduce((n, [, array]) => n + array.byteLength, 0),
            blob: snapshot.state.blob.byteLength,
            output: [...outputColumns.values()].reduce((n, column) => n + column.bytes.byteLength, 0),
            devices: Object.entries(snapshot.state.arrays)
              .filter(([name]) => name === 'devices' || name.startsWith('devices.'))
              .reduce((n, [, array]) => n + array.byteLength, 0),
            series: snapshot.state.arrays[READINGS_STATE]?.byteLength ?? 0,
          },
        }
        if (this.checkpointDurations.length < 1000) this.checkpointDurations.push(seconds)
        // Revisions of minutes older than the ring go out once their columns are on disk.
        this.sendCold(this.pipeline.accounting.coldCommitted(generation))
        for (const [slot, journal] of this.journals) await journal.release(journalSeqs.get(slot) ?? 0)
        if (this.legacyFile) {
          await rm(this.legacyFile, { force: true })
          this.options.logger.info({ path: this.legacyFile }, 'checkpoint file of an older version removed')
          this.legacyFile = undefined
        }
        this.options.logger.debug(
          { journalSeqs: Object.fromEntries(journalSeqs), ms: this.now() - started, ...this.lastCheckpoint },
          'checkpoint written',
        )
      } catch (error) {
        // Whatever the snapshot took (columns, a reading log chunk) is not on disk: the next is full.
        this.fullNext = true
        this.checkpointFailures++
        this.options.logger.error(
          { err: error },
          'writing the checkpoint failed; the journal keeps everything since the last one',
        )
      } finally {
        this.checkpointing = undefined
      }
    })()
    return this.checkpointing
  }

  /**
   * The pipeline snapshot and its journal sequence, taken together (synchronously) after every
   * bucket emitted so far was taken; resolves once those buckets are in the history store (issue 13
   * step 4): the checkpoint may then let the journal go up to that sequence without losing closed
   * buckets that would be in neither place after a crash.
   */
  private async snapshotWithHistoryWritten(
    full: boolean,
    savedAt: number,
    hold: (ms: number, kind: 'snapshot' | 'slice') => void,
  ) {
    let heldFrom = performance.now()
    const journalSeqs = new Map(this.journalSeqs)
    this.publishEvents()
    const {
      state: pipeline,
      columns,
      generation,
      readings,
      outputColumns,
      devices,
      capture,
    } = this.pipeline.snapshotSliced(full)
    let blob: Buffer
    let readingsState: Uint8Array | undefined
    let slices = 1
    try {
      // Taken with the pipeline's, in the same turn: the tuners' state stands at the same journal sequence.
      const tuning = this.tuningService.loop.checkpoint()
      // Encoded in the same turn too: nothing that runs while the store is written can change it.
      blob = encodeStateBlob({
        journalSeq: journalSeqs.get(0) ?? 0,
        journalSeqs: Object.fromEntries(journalSeqs),
        savedAt,
        pipeline,
        tuning,
      })
      hold(performance.now() - heldFrom, 'snapshot')
      // The reading log's chunk, the device counters, then detection's state, in later turns, each
      // series, device and equipment as it stood at this snapshot (reading-log.ts,
      // device-capture.ts, capture.ts): readings applied meanwhile do not hold up behind them.
      const sliceMs = this.options.checkpointSliceMs ?? 2
      for (;;) {
        await setImmediate()
        heldFrom = performance.now()
        slices++
        // Half the turn for copying, half for encoding the copies (about as long).
        const until = heldFrom + sliceMs / 2
        const more = () => performance.now() < until
        let done = false
        // The series' state is encoded in a turn of its own (a few MB at 40,000 devices).
        if (readings.open) readings.slice(more)
        else if (readingsState === undefined) readingsState = encodeReadingsState(readings.state)
        else if (devices.open) devices.slice(more)
        else done = capture.slice(more)
        hold(performance.now() - heldFrom, 'slice')
        if (done) break
      }
    } finally {
      readings.close()
      devices.close()
      capture.close()
    }
    const state = {
      blob,
      arrays: {
        ...detectionArrays(capture.chunks),
        ...deviceArrays(devices.chunks),
        [READINGS_STATE]: readingsState!,
      },
    }
    const conflictsBefore = this.historySink?.counters.conflicts ?? 0
    await this.historySink?.written()
    return {
      journalSeqs,
      state,
      columns,
      outputColumns,
      generation,
      readings: readings.write(),
      slices,
      conflicted: (this.historySink?.counters.conflicts ?? 0) > conflictsBefore,
    }
  }

  /**
   * One durable record of a journal slot. A record at or below the slot's position was applied
   * already: a restarted worker replays its journal from the position it was given, and records
   * forwarded before its crash may still arrive; they are not counted twice.
   */
  private applyRecord(slot: number, record: SourceRecord): void {
    if (record.seq <= (this.journalSeqs.get(slot) ?? 0)) return
    if (record.decoded) this.pipeline.ingestDecoded(record.topic, record.decoded, record.receivedAtMs)
    else this.ingest(record.topic, record.payload, record.receivedAtMs)
    this.journalSeqs.set(slot, record.seq)
  }

  /** One durable device message: readings to the pipeline, acks to the tuning loop (§3). */
  private ingest(topic: string, payload: Uint8Array, receivedAtMs: number): void {
    if (topic.endsWith('/ack')) this.tuningService.ingestAck(topic, payload)
    else this.pipeline.ingest(topic, payload, receivedAtMs)
  }

  private onAck(payload: Buffer): void {
    let request: AlertAckRequest
    try {
      request = decodeMessage<AlertAckRequest>(payload)
    } catch {
      this.options.logger.warn('alert ack request is not JSON: ignored')
      return
    }
    if (typeof request?.id !== 'string' || typeof request.atMs !== 'number') return
    const result = this.pipeline.detection.ack(request.id, request.atMs, request.by)
    this.options.logger.info({ alertId: request.id, result }, 'alert acknowledged')
    this.publishEvents()
  }

  /**
   * A gateway asks for the alert events it lacks (it just started, or saw a hole in the seq): the
   * held events after `after` and the alerts open now, in messages of at most 1,000 events; the
   * last one carries `open`. Events pending publication go first, so the answer is in seq order.
   */
  private onAlertsSync(payload: Buffer): void {
    let request: SyncRequest
    try {
      request = decodeMessage<SyncRequest>(payload)
    } catch {
      return
    }
    this.publishEvents()
    const detection = this.pipeline.detection
    const { firstHeldSeq, lastSeq } = detection.alerts.log
    const messages = syncAnswerMessages(
      request,
      { firstHeldSeq, lastSeq, since: (after) => detection.alertsSince(after).events },
      () => detection.openAlertsSequenced(),
      (events, sync): AlertEvents => ({ events: events.map(({ seq, event }) => ({ seq, alert: event })), sync }),
    )
    for (const message of messages) this.send(ALERTS_TOPIC, message, 1)
  }

  /** PUT /api/v1/sites/{site}/carbon, relayed by the gateway (which validated it). */
  private onCarbon(payload: Buffer): void {
    let request: CarbonRequest
    try {
      request = decodeMessage<CarbonRequest>(payload)
    } catch {
      return
    }
    if (!this.options.plant.sites.has(request?.site) || !isValidCarbon(request.carbon)) {
      this.options.logger.warn({ site: request?.site }, 'carbon figures refused: unknown site or invalid figures')
      return
    }
    this.pipeline.accounting.setCarbon(request.site, request.carbon)
    this.options.logger.info({ site: request.site, by: request.by }, 'carbon figures replaced')
  }

  /** GET /api/v1/devices/{id} through the gateway: counters and newest readings, null when unseen. */
  private deviceQuery(params: unknown) {
    const id = (params as { id?: unknown } | null)?.id
    if (typeof id !== 'string') throw new Error('bad device query')
    const counters = this.pipeline.devices.get(id)
    if (!counters) return null
    const last = [...(counters.last ?? [])].map(([name, [t, value]]) => ({ name, t: t * 1000, value }))
    return {
      lastSeenMs: counters.lastSeenMs,
      accepted: counters.accepted,
      duplicates: counters.duplicates,
      rejected: counters.rejected,
      last,
    }
  }

  /** DELETE /api/v1/devices/{id}/names through the gateway: how many names were forgotten, null when no device. */
  private forgetNamesQuery(params: unknown) {
    const id = (params as { id?: unknown } | null)?.id
    if (typeof id !== 'string') throw new Error('bad forgetNames query')
    const forgotten = this.pipeline.forgetNames(id)
    if (forgotten === undefined) return null
    this.options.logger.info({ deviceId: id, forgotten }, 'device names forgotten')
    return { forgotten }
  }

  private publishChanges(): void {
    this.publishEvents()
    this.live.tick()
  }

  /**
   * GET /api/v1/live for a scope no live subscription of the asking gateway watches: computed now,
   * as a frame would carry it (issue 14). Null for a scope not in the plant.
   */
  private liveQuery(params: unknown) {
    const scope = (params as { scope?: unknown } | null)?.scope
    if (typeof scope !== 'string') throw new Error('bad live query')
    const node = this.options.plant.scope(scope)
    if (!node) return null
    const figures = this.tuningService.withSavedToday(scope, this.pipeline.figures(node))
    const site = this.options.plant.sites.get(node.siteId)!.node
    return {
      ...figures,
      at: this.pipeline.siteClockMs(node.siteId),
      gridGPerKWh: this.pipeline.figures(site).gridGPerKWh,
    }
  }

  /**
   * GET /api/v1/plant: each equipment's state, power, thresholds in force and tuner, within
   * `params.scopes` (the token's; all when absent). Asked on request rather than streamed, so that
   * the processor sends the gateway no figures nobody looks at (issue 14).
   */
  private equipmentQuery(params: unknown) {
    const within = (params as { scopes?: unknown } | null)?.scopes
    const roots = Array.isArray(within)
      ? within.flatMap((scope) => (typeof scope === 'string' ? (this.options.plant.scope(scope) ?? []) : []))
      : [...this.options.plant.sites.values()].map((site) => site.node)
    const answer: Record<string, unknown> = {}
    for (const root of roots) {
      for (const node of root.equipment) {
        if (Object.hasOwn(answer, node.scope)) continue
        const live = this.pipeline.equipmentLive(node)
        if (!live) continue
        const tuning = this.tuningService.loop.brief(node.scope)
        answer[node.scope] = tuning ? { ...live, tuning } : live
      }
    }
    return answer
  }

  /**
   * Resolves once every bucket emitted so far is in the embedded history store, including those
   * sent again above a conflicting stored revision (a few rounds at most).
   */
  async historyWritten(): Promise<void> {
    if (!this.historySink) return
    for (let round = 0; round < 4; round++) {
      this.publishEvents()
      await this.historySink.written()
      if (!this.pipeline.accounting.hasPendingRevisions()) return
    }
  }

  /** The store's retention tiers (§6) at the earliest site clock: no site loses what it must keep. */
  private pruneHistory(): Promise<void> {
    let earliest: number | undefined
    for (const site of this.options.plant.sites.keys()) {
      const clock = this.pipeline.siteClockMs(site)
      if (clock !== null && (earliest === undefined || clock < earliest)) earliest = clock
    }
    if (earliest === undefined || !this.historySink) return Promise.resolve()
    return this.historySink.prune(earliest)
  }

  /** Closed buckets and alert events: to the bus (gateway) and to the history stores. */
  private publishEvents(): void {
    const clocks = [...this.options.plant.sites.keys()].map(
      (id) => [id, this.pipeline.accounting.siteClock(id)] as const,
    )
    const buckets = this.pipeline.takeBucketEvents(this.stalledClocks.due(clocks, performance.now()))
    const alerts = this.pipeline.takeAlertEvents()
    // Offline and back online of a tuned equipment's device hold and resume its tuner; the
    // tuner's own alerts (constraint, command) join the same book and seq before they go out.
    this.tuningService.noteAlerts(alerts)
    alerts.push(...this.pipeline.takeAlertEvents())
    this.tuningService.publishEvents()
    if (buckets.length > 0) this.publishBuckets(buckets)
    this.historySink?.write(buckets)
    const beyond = this.pipeline.accounting.counters.beyondHistory
    if (beyond > this.beyondLogged) {
      this.options.logger.warn(
        { beyondHistory: beyond, new: beyond - this.beyondLogged },
        'energy of late readings not placed: their minutes are older than maxAgeS, or no state store keeps them',
      )
      this.beyondLogged = beyond
    }
    if (alerts.length > 0) this.publishAlerts(alerts)
    const history = this.options.history
    if (history && (buckets.length > 0 || alerts.length > 0)) {
      const points: HistoryPoint[] = []
      for (const bucket of buckets) points.push(bucketPoint(bucket))
      for (const { seq, event } of alerts) points.push(alertPoint({ ...event, seq }))
      history.write(points)
    }
  }

  /** Cold revisions (accounting's cold-minutes.ts) to the bus and the history store. */
  private sendCold(events: BucketEvent[]): void {
    if (events.length === 0) return
    this.publishBuckets(events)
    this.historySink?.write(events)
    this.options.logger.info({ buckets: events.length }, 'buckets of minutes older than the ring revised')
  }

  private publishBuckets(buckets: BucketEvent[]): void {
    const bySite = new Map<string, BucketEvent[]>()
    for (const bucket of buckets) {
      if (bucket.revision > 0) this.bucketRevisions++
      this.tuningService.addSavings(bucket)
      const site = bucket.scope.split('/', 1)[0]!
      let list = bySite.get(site)
      if (!list) {
        list = []
        bySite.set(site, list)
      }
      list.push(bucket)
    }
    for (const [site, list] of bySite) {
      for (let k = 0; k < list.length; k += BUCKETS_PER_MESSAGE) {
        const update: BucketUpdate = { site, buckets: list.slice(k, k + BUCKETS_PER_MESSAGE) }
        this.send(bucketsTopic(site), update, 0)
      }
    }
  }

  private publishAlerts(alerts: Sequenced<Alert>[]): void {
    const message: AlertEvents = { events: alerts.map(({ seq, event }) => ({ seq, alert: event })) }
    // QoS 1: alert subscribers must never miss one (CONTRACT.md §5).
    this.send(ALERTS_TOPIC, message, 1)
  }

  /** Every watched scope's figures at once (a gateway's live-sync request). */
  private publishAll(): void {
    this.live.publishAll()
  }

  private send(topic: string, message: unknown, qos: 0 | 1): void {
    this.options.bus.publish(topic, encodeMessage(message), { qos }).catch((error) => {
      this.options.logger.error({ err: error, topic }, 'publishing to the bus failed')
    })
  }
}
