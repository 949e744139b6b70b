import type { HistorySink } from '@plantwatt/history'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Processor } from './processor.ts'

// The processor's Prometheus metrics (issue 6 /metrics): ingest, rejections by reason, lateness
// (readings behind the watermark, buckets revised), and the history store's buffer. The
// pipeline counts these already; they are read at scrape time, never counted twice.

/** A counter whose value(s) are read at scrape time. */
function readCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | Record<string, number>,
  labelName?: string,
) {
  new Counter({
    name,
    help,
    labelNames: labelName ? [labelName] : [],
    registers: [registry],
    collect() {
      this.reset()
      const value = read()
      if (typeof value === 'number') this.inc(value)
      else for (const [label, count] of Object.entries(value)) this.inc({ [labelName!]: label }, count)
    },
  })
}

function readGauge(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | Record<string, number>,
  labelName?: string,
) {
  new Gauge({
    name,
    help,
    labelNames: labelName ? [labelName] : [],
    registers: [registry],
    collect() {
      const value = read()
      if (typeof value === 'number') this.set(value)
      else for (const [label, v] of Object.entries(value)) this.set({ [labelName!]: label }, v)
    },
  })
}

export function registerProcessorMetrics(registry: Registry, processor: Processor, history?: HistorySink): void {
  const stats = () => processor.stats
  // Setpoint tuning (issue 15, CONTRACT.md §3): commands sent, events, acks taken and refused.
  const tuning = () => processor.tuningStats
  // Live figures for the watched scopes (issue 14): what the gateways watch and what it costs the bus.
  readGauge(
    registry,
    'plantwatt_live_watched_scopes',
    'Scopes some gateway has live subscribers for',
    () => processor.watchedScopes,
  )
  readCounter(
    registry,
    'plantwatt_live_batch_bytes_total',
    'Bytes of live batches sent to the gateways',
    () => processor.liveStats.bytes,
  )
  readCounter(
    registry,
    'plantwatt_live_scopes_sent_total',
    'Scope figures sent to the gateways',
    () => processor.liveStats.scopesSent,
  )
  readCounter(
    registry,
    'plantwatt_live_interest_rejected_total',
    'Live interest messages not understood (ignored)',
    () => processor.liveStats.badInterest,
  )
  readCounter(registry, 'plantwatt_setpoint_commands_total', 'Setpoint commands published', () => tuning().commands)
  readCounter(registry, 'plantwatt_setpoint_events_total', 'Setpoint events', () => tuning().events)
  readCounter(registry, 'plantwatt_setpoint_acks_total', 'Setpoint acks taken', () => tuning().acks)
  readCounter(
    registry,
    'plantwatt_setpoint_acks_rejected_total',
    'Acks refused: not a CONTRACT.md §3 ack, or from a device of no tuned equipment',
    () => tuning().acksRejected,
  )
  readCounter(
    registry,
    'plantwatt_setpoint_acks_behind_total',
    'Acks that came after a later reading of their own device (each still taken at its own time)',
    () => tuning().acksBehind,
  )
  readCounter(
    registry,
    'plantwatt_tuning_late_total',
    'Readings and acks of a tuned equipment that came after it had moved past their time',
    () => tuning().late,
  )
  readCounter(
    registry,
    'plantwatt_ingest_messages_total',
    'Uplink messages taken by the processor',
    () => stats().messages,
  )
  readCounter(registry, 'plantwatt_readings_accepted_total', 'Readings accepted', () => stats().readingsAccepted)
  registerHistoryStoreMetrics(registry, processor)
  readCounter(
    registry,
    'plantwatt_readings_duplicate_total',
    'Repeats of accepted readings, counted once',
    () => stats().readingsDuplicate,
  )
  readCounter(
    registry,
    'plantwatt_readings_rejected_total',
    'Records rejected, by reason (CONTRACT.md §2)',
    () => stats().rejectedByReason as Record<string, number>,
    'reason',
  )
  readCounter(
    registry,
    'plantwatt_unknown_device_messages_total',
    'Messages from ids not in the plant',
    () => stats().unknownDeviceMessages,
  )
  readCounter(
    registry,
    'plantwatt_readings_behind_watermark_total',
    'Readings that arrived after their minute was final (counted into a revision, not into detection)',
    () => processor.state.detection.behindWatermark,
  )
  const accounting = () => processor.state.accounting.counters
  readCounter(
    registry,
    'plantwatt_readings_approximated_total',
    "Readings older than their device's retained readings: their interval was already accounted from its ends, so they only raise a peak",
    () => accounting().approximated,
  )
  readCounter(
    registry,
    'plantwatt_energy_pieces_beyond_history_total',
    'Minute pieces of energy that could not be placed (older than the kept minutes); the processor logs them',
    () => accounting().beyondHistory,
  )
  readCounter(
    registry,
    'plantwatt_energy_pieces_cold_total',
    'Minute pieces of energy placed in minutes older than the kept ring (revised from the state store)',
    () => accounting().coldPlaced,
  )
  readCounter(
    registry,
    'plantwatt_bucket_revisions_total',
    'Buckets sent again because late readings changed them',
    () => processor.bucketRevisions,
  )
  if (!history) return
  registerInfluxMetrics(registry, history)
}

/** The embedded history store (issue 13): bucket rows written, stale, refused by reason, conflicts. */
function registerHistoryStoreMetrics(registry: Registry, processor: Processor): void {
  const sink = () => processor.historySink?.counters
  readCounter(registry, 'plantwatt_store_rows_written_total', 'Bucket and demand rows the history store took', () =>
    sink() ? sink()!.written : 0,
  )
  readCounter(registry, 'plantwatt_store_rows_stale_total', 'Rows not above the stored revision', () =>
    sink() ? sink()!.stale : 0,
  )
  readCounter(
    registry,
    'plantwatt_store_rows_rejected_total',
    'Rows the history store refused, by reason',
    () => (sink()?.rejected ?? {}) as Record<string, number>,
    'reason',
  )
  readCounter(
    registry,
    'plantwatt_store_conflicts_total',
    'Buckets sent again above the stored revision (after a restore)',
    () => sink()?.conflicts ?? 0,
  )
  readCounter(registry, 'plantwatt_store_failed_batches_total', 'Write batches the history store failed', () =>
    sink() ? sink()!.failedBatches : 0,
  )
  readGauge(registry, 'plantwatt_store_queued_rows', 'Rows waiting for the history store', () =>
    processor.historySink ? processor.historySink.store.queuedRows : 0,
  )
  registerCheckpointMetrics(registry, processor)
}

/** The processor's checkpoint (issue 13): how long each write took, what it wrote, what failed. */
function registerCheckpointMetrics(registry: Registry, processor: Processor): void {
  new Histogram({
    name: 'plantwatt_checkpoint_duration_seconds',
    help: 'Wall time of a checkpoint, from its snapshot to its commit on disk',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
    collect() {
      // Observed at scrape time from what the processor recorded since the last one.
      for (const seconds of processor.takeCheckpointDurations()) this.observe(seconds)
    },
  })
  readGauge(
    registry,
    'plantwatt_checkpoint_bytes',
    'Bytes of the last checkpoint written, by part (columns uncompressed)',
    () => ({
      ...(processor.lastCheckpoint?.parts ?? {
        columns: 0,
        readings: 0,
        detection: 0,
        blob: 0,
        output: 0,
        devices: 0,
        series: 0,
      }),
    }),
    'part',
  )
  // A checkpoint should never hold the loop long (issue 13): the longest turn of each kind shows which part did.
  readGauge(
    registry,
    'plantwatt_checkpoint_held_seconds',
    'Longest turn of the event loop the last checkpoint held, by kind (snapshot, slice, store; max of all)',
    () => {
      const held = processor.lastCheckpoint?.heldMs
      return {
        max: (held?.max ?? 0) / 1000,
        snapshot: (held?.snapshot ?? 0) / 1000,
        slice: (held?.slice ?? 0) / 1000,
        store: (held?.store ?? 0) / 1000,
      }
    },
    'kind',
  )
  readCounter(
    registry,
    'plantwatt_checkpoint_failures_total',
    'Checkpoints that failed to write (the journal keeps what they would have covered)',
    () => processor.checkpointFailures,
  )
}

function registerInfluxMetrics(registry: Registry, history: HistorySink): void {
  readCounter(
    registry,
    'plantwatt_history_points_accepted_total',
    'Points queued for the history store',
    () => history.stats().accepted,
  )
  readCounter(
    registry,
    'plantwatt_history_points_written_total',
    'Points the history store acknowledged',
    () => history.stats().written,
  )
  readCounter(
    registry,
    'plantwatt_history_points_refused_total',
    'Points refused, by reason',
    () => history.stats().refused as Record<string, number>,
    'reason',
  )
  readGauge(
    registry,
    'plantwatt_history_queued_points',
    'Points waiting for the history store, in memory and spilled to disk',
    () => ({ memory: history.stats().queuedMemory, disk: history.stats().queuedDisk }),
    'where',
  )
  readGauge(
    registry,
    'plantwatt_history_spool_bytes',
    'Bytes of spilled points on disk',
    () => history.stats().diskBytes,
  )
  readGauge(registry, 'plantwatt_history_healthy', '1 while the history store takes writes', () =>
    history.stats().healthy ? 1 : 0,
  )
}
