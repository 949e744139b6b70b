import type { BucketEvent } from '@plantwatt/accounting'
import {
  ALERT_ACK_TOPIC,
  ALERTS_TOPIC,
  type AlertAckRequest,
  type AlertEvents,
  type BucketUpdate,
  type Bus,
  bucketsTopic,
  decodeMessage,
  type EquipmentLive,
  encodeMessage,
  LIVE_SYNC_TOPIC,
  type LiveUpdate,
  liveTopic,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert } from '@plantwatt/contract'
import { UPLINK_FILTER } from '@plantwatt/contract'
import type { Sequenced } from '@plantwatt/detection'
import { alertPoint, bucketPoint, type HistoryPoint, type HistorySink } from '@plantwatt/history'
import type { PlantIndex, ScopeNode } from '@plantwatt/plant'
import type { IngestJournal } from '@plantwatt/runtime'
import type { Logger } from 'pino'
import { CheckpointFile } from './checkpoint-file.ts'
import { type DeviceCounters, type PipelineOptions, type PipelineStats, ReadingPipeline } from './pipeline.ts'

export type { DeviceCounters }

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
  journal?: IngestJournal
  /** The processor's checkpoint file (in the data directory); none: state lives in memory only. */
  checkpointPath?: string
  /** How often the checkpoint is written, ms (default 60 s); also at stop. */
  checkpointIntervalMs?: number
  /** History store (InfluxDB); buckets and alert events go there as points. */
  history?: HistorySink
  pipeline?: PipelineOptions
}

/** Bucket events per bus message: a 40,000-device plant closes tens of thousands a minute. */
const BUCKETS_PER_MESSAGE = 2000

/**
 * The stream processor's composition root: uplinks from the journal (or the bus) go through the
 * reading pipeline; live figures, closed buckets and alert events go back on the bus and to the
 * history store; the state is checkpointed to the data directory, and restored at start.
 */
export class Processor {
  private pipeline!: ReadingPipeline
  private readonly now: () => number
  private readonly unsubscribes: Unsubscribe[] = []
  private readonly checkpointFile: CheckpointFile | undefined
  private publishTimer: NodeJS.Timeout | undefined
  private checkpointTimer: NodeJS.Timeout | undefined
  /** The last journal record applied to the pipeline. */
  private journalSeq = 0
  private checkpointing: Promise<void> | undefined
  private started = false

  constructor(private readonly options: ProcessorOptions) {
    this.now = options.now ?? Date.now
    this.checkpointFile = options.checkpointPath ? new CheckpointFile(options.checkpointPath) : undefined
  }

  get stats(): PipelineStats {
    return this.pipeline.stats
  }

  get devices(): ReadonlyMap<string, DeviceCounters> {
    return this.pipeline.devices
  }

  /** The domain state, for the HTTP API and tests (read only). */
  get state(): ReadingPipeline {
    return this.pipeline
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const { bus, logger, journal } = this.options
    const restored = await this.checkpointFile?.read()
    this.pipeline = new ReadingPipeline(this.options.plant, this.options.pipeline, restored?.pipeline)
    this.journalSeq = restored?.journalSeq ?? 0
    if (restored) logger.info({ journalSeq: this.journalSeq, savedAt: restored.savedAt }, 'processor state restored')

    if (journal) {
      // What was acknowledged to devices after the checkpoint: applied again, in order, before
      // anything new (the broker does not listen yet).
      let replayed = 0
      for await (const record of journal.replay(this.journalSeq)) {
        this.pipeline.ingest(record.topic, record.payload, record.receivedAtMs)
        this.journalSeq = record.seq
        replayed++
      }
      if (replayed > 0) logger.info({ replayed, journalSeq: this.journalSeq }, 'journal replayed')
      journal.onDurable = (record) => {
        this.pipeline.ingest(record.topic, record.payload, record.receivedAtMs)
        this.journalSeq = record.seq
      }
    } else {
      this.unsubscribes.push(
        await bus.subscribe(UPLINK_FILTER, (topic, payload) => this.pipeline.ingest(topic, payload, this.now())),
      )
    }
    this.unsubscribes.push(await bus.subscribe(LIVE_SYNC_TOPIC, () => this.publishAll()))
    this.unsubscribes.push(await bus.subscribe(ALERT_ACK_TOPIC, (_topic, payload) => this.onAck(payload)))
    this.publishTimer = setInterval(() => this.publishChanges(), this.options.publishIntervalMs ?? 200)
    this.publishTimer.unref()
    if (this.checkpointFile) {
      this.checkpointTimer = setInterval(() => void this.checkpoint(), this.options.checkpointIntervalMs ?? 60_000)
      this.checkpointTimer.unref()
    }
    // A gateway that started first asked for a sync before anyone listened: answer it now.
    this.publishAll()
  }

  /** Stops taking uplinks, sends what is pending, writes the checkpoint. Safe to call twice. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    if (this.publishTimer) clearInterval(this.publishTimer)
    if (this.checkpointTimer) clearInterval(this.checkpointTimer)
    this.publishTimer = undefined
    this.checkpointTimer = undefined
    if (this.options.journal) this.options.journal.onDurable = () => {}
    for (const unsubscribe of this.unsubscribes.splice(0)) await unsubscribe()
    this.publishChanges()
    await this.checkpoint()
  }

  /** The figures of one scope as the processor holds them now (GET /api/v1/live, tests). */
  figures(scope: ScopeNode) {
    return this.pipeline.figures(scope)
  }

  /** Writes the checkpoint now (one at a time); the journal then drops what it covers. */
  checkpoint(): Promise<void> {
    if (!this.checkpointFile) return Promise.resolve()
    this.checkpointing ??= (async () => {
      const journalSeq = this.journalSeq
      try {
        const started = this.now()
        await this.checkpointFile!.write({ journalSeq, savedAt: started, pipeline: this.pipeline.checkpoint() })
        await this.options.journal?.release(journalSeq)
        this.options.logger.debug({ journalSeq, ms: this.now() - started }, 'checkpoint written')
      } catch (error) {
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

  private publishChanges(): void {
    this.publishEvents()
    const changes = this.pipeline.takeChanges()
    for (const siteId of changes.sites) this.publishSite(siteId, changes.scopes.get(siteId) ?? [], false)
  }

  /** Closed buckets and alert events: to the bus (gateway) and to the history store. */
  private publishEvents(): void {
    const buckets = this.pipeline.takeBucketEvents()
    const alerts = this.pipeline.takeAlertEvents()
    if (buckets.length > 0) this.publishBuckets(buckets)
    if (alerts.length > 0) this.publishAlerts(alerts)
    const history = this.options.history
    if (history && (buckets.length > 0 || alerts.length > 0)) {
      const points: HistoryPoint[] = []
      for (const bucket of buckets) points.push(bucketPoint(bucket))
      for (const { seq, event } of alerts) points.push(alertPoint({ ...event, seq }))
      history.write(points)
    }
  }

  private publishBuckets(buckets: BucketEvent[]): void {
    const bySite = new Map<string, BucketEvent[]>()
    for (const bucket of buckets) {
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

  private publishAll(): void {
    for (const site of this.options.plant.sites.values()) this.publishSite(site.node.id, site.scopes, true)
  }

  private publishSite(siteId: string, scopes: ScopeNode[], full: boolean): void {
    const equipment: EquipmentLive[] = []
    for (const node of scopes) {
      const live = this.pipeline.equipmentLive(node)
      if (live) equipment.push(live)
    }
    const at = this.pipeline.siteClockMs(siteId)
    const update: LiveUpdate = {
      site: siteId,
      at,
      gridGPerKWh: this.pipeline.figures(this.options.plant.sites.get(siteId)!.node).gridGPerKWh,
      full,
      scopes: scopes.map((node) => this.pipeline.figures(node)),
      equipment,
    }
    this.send(liveTopic(siteId), update, 0)
  }

  private send(topic: string, message: unknown, qos: 0 | 1): void {
    this.options.bus.publish(topic, encodeMessage(message), { qos }).catch((error) => {
      this.options.logger.error({ err: error, topic }, 'publishing to the bus failed')
    })
  }
}
