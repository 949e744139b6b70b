import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLocalBus } from '@plantwatt/broker'
import { type Fleet, startFleet } from '@plantwatt/fleet'
import { createGateway } from '@plantwatt/gateway'
import { PlantIndex } from '@plantwatt/plant'
import { type JournalSource, Processor, registerProcessorMetrics } from '@plantwatt/processor'
import {
  IngestJournal,
  type JournalRecord,
  type Logger,
  loadDeviceSecret,
  prepareDataDirectory,
} from '@plantwatt/runtime'
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client'
import { backfillDemo } from '../demo-backfill.ts'
import {
  checkpointPath,
  cleanDataDir,
  leftoverJournalSlots,
  logJournalSkip,
  openHistory,
  openHistoryStore,
  openTokens,
  registerJournalMetrics,
  slotJournalDir,
} from '../roles.ts'
import type { RunningSystem, UpOptions } from '../up.ts'
import { DownlinkOwner, loadPendingDownlinks, PendingDownlinks, savePendingDownlinks } from './downlinks.ts'
import { decodeRecords, type ForwardedRecord, type FromWorker, type ToWorker } from './protocol.ts'
import { proxyToWorker } from './proxy.ts'
import { whenWorkerGone } from './worker-gone.ts'

// The primary of `plantwatt up --workers N` (issue 16, docs/state-ownership.md): the site owner.
// It runs the processor (accounting, detection, tuning, the alert seq, the history store's one
// writer, the checkpoint) and the gateway, joined by a bus inside this process, and the broker
// workers, one per slot, each with its own ingest journal and session store in the data directory.
// Per-reading work stays in the workers; what crosses is compact: a worker's durable records in one
// message per group commit, and back, the few downlinks and journal releases.

/** One worker's metrics, as its registry's getMetricsAsJSON() gives them. */
type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[]

/** A worker's entry point, beside this module (.ts under tsx, .js once built). */
const WORKER_ENTRY = fileURLToPath(new URL(`./worker-main${extname(import.meta.url)}`, import.meta.url))

/** How long a stopping worker may take before it is killed. */
const WORKER_STOP_MS = 15_000
/** How long /metrics waits for a worker's figures. */
const METRICS_TIMEOUT_MS = 2000

/**
 * A worker's journal as the processor sees it: replayed from disk at start (before the worker
 * runs, so the slots merge by receipt time), then fed with the records the worker forwards.
 */
class WorkerJournal implements JournalSource {
  onDurable: (record: JournalRecord) => void = () => {}
  /** What the processor's checkpoint covers: told to the worker, now or at its next start. */
  releasedSeq = 0
  worker: Worker | undefined
  /** Damage the primary's own replay found (counted here, not again by the worker it starts next). */
  readonly stats = { skippedRecords: 0, skippedBytes: 0, failures: 0 }
  /** Replayed by the primary at its start: the first worker of the slot does not count its damage again. */
  replayedHere = false

  constructor(
    readonly slot: number,
    private readonly dir: string,
    private readonly logger: Logger,
    private readonly tap: (record: JournalRecord) => void,
  ) {}

  async *replay(afterSeq: number): AsyncGenerator<JournalRecord> {
    const journal = await IngestJournal.open(this.dir, { onSkip: (skip) => logJournalSkip(this.logger, skip) })
    this.replayedHere = true
    try {
      for await (const record of journal.replay(afterSeq)) {
        this.tap(record)
        yield record
      }
    } finally {
      this.stats.skippedRecords += journal.stats.skippedRecords
      this.stats.skippedBytes += journal.stats.skippedBytes
      await journal.close()
    }
  }

  deliver(records: ForwardedRecord[]): void {
    for (const record of records) {
      this.tap(record)
      this.onDurable(record)
    }
  }

  release(seq: number): Promise<void> {
    this.releasedSeq = seq
    if (this.worker?.isConnected()) sendTo(this.worker, { t: 'release', seq })
    return Promise.resolve()
  }
}

/**
 * The journal slot of `--demo`'s history backfill, which the primary runs itself: beyond every
 * worker's (`--workers` is at most 64), so that no worker ever writes it. A start without the demo
 * replays and releases it as any slot left over.
 */
export const DEMO_BACKFILL_SLOT = 64

/**
 * A journal of this process as the processor's source, every record shown to `tap` first (the
 * pending downlinks see the simulated devices' acks, as they see those the workers forward).
 */
function tappedJournal(journal: IngestJournal, tap: (record: JournalRecord) => void) {
  return {
    stats: journal.stats,
    async *replay(afterSeq: number): AsyncGenerator<JournalRecord> {
      for await (const record of journal.replay(afterSeq)) {
        tap(record)
        yield record
      }
    },
    get onDurable() {
      return journal.onDurable
    },
    set onDurable(apply: (record: JournalRecord) => void) {
      journal.onDurable = (record) => {
        tap(record)
        apply(record)
      }
    },
    release: (seq: number) => journal.release(seq),
  } satisfies JournalSource & { stats: WorkerJournal['stats'] }
}

function sendTo(worker: Worker, message: ToWorker): void {
  if (worker.isConnected()) worker.send(message, undefined, () => {})
}

/** The registry served at /metrics: this process's metrics and every worker's, summed (prom-client's cluster aggregation). */
class ClusterRegistry extends Registry {
  constructor(private readonly workerMetrics: () => Promise<{ slot: number; metrics: WorkerMetrics }[]>) {
    super()
  }

  override async metrics(): Promise<string> {
    const own = await this.getMetricsAsJSON()
    const workers = await this.workerMetrics()
    // Beside the sums, each worker's sessions by slot: how connections spread over the workers.
    const perWorker = {
      name: 'plantwatt_up_worker_connected_clients',
      help: 'MQTT sessions connected to each broker worker of plantwatt up',
      type: 'gauge',
      aggregator: 'sum',
      values: workers.map(({ slot, metrics }) => ({
        labels: { worker: String(slot) },
        value: metrics.find((metric) => metric.name === 'plantwatt_broker_connected_clients')?.values[0]?.value ?? 0,
      })),
    }
    return AggregatorRegistry.aggregate([own, ...workers.map(({ metrics }) => metrics), [perWorker]]).metrics()
  }
}

export async function upPrimary(options: UpOptions, logger: Logger, workers: number): Promise<RunningSystem> {
  const plant = new PlantIndex(options.plant)
  await prepareDataDirectory(options.dataDir, logger)
  await cleanDataDir(options.dataDir, logger)
  const deviceSecret = await loadDeviceSecret(options.dataDir, options.deviceSecret)
  const tokens = await openTokens(options.dataDir, options.adminToken)
  const history = await openHistory(options.influx, options.dataDir, logger)
  const clusterKey = randomBytes(24).toString('hex')

  // Workers by slot (the live process of each), and the metrics requests waiting for them.
  const running = new Map<number, Worker>()
  const listening = new Map<number, { port: number; proxyPort: number }>()
  type Collected = { slot: number; metrics: WorkerMetrics }[]
  const metricsWaiting = new Map<number, { left: number; results: Collected; resolve: (m: Collected) => void }>()
  let metricsId = 0
  const registry = new ClusterRegistry(
    () =>
      new Promise((resolve) => {
        const live = [...running.values()].filter((worker) => worker.isConnected())
        if (live.length === 0) return resolve([])
        const id = ++metricsId
        const timer = setTimeout(() => {
          metricsWaiting.delete(id)
          resolve(waiting.results)
        }, METRICS_TIMEOUT_MS)
        const waiting = {
          left: live.length,
          results: [] as Collected,
          resolve: (results: Collected) => {
            clearTimeout(timer)
            resolve(results)
          },
        }
        metricsWaiting.set(id, waiting)
        for (const worker of live) sendTo(worker, { t: 'metrics', id })
      }),
  )
  collectDefaultMetrics({ register: registry })
  new Gauge({
    name: 'plantwatt_up_workers_listening',
    help: 'Broker workers of plantwatt up listening now',
    registers: [registry],
    collect() {
      this.set(listening.size)
    },
  })
  const workerRestarts = new Counter({
    name: 'plantwatt_up_worker_restarts_total',
    help: 'Broker workers that exited unasked and were started again',
    registers: [registry],
  })

  const bus = await createLocalBus((error) => logger.error({ err: error }, 'bus handler failed'))

  // Downlinks owed to devices, whichever worker they reach (docs/decisions.md).
  const pendingPath = join(options.dataDir, 'downlinks.v8')
  const pending = new PendingDownlinks()
  await loadPendingDownlinks(pendingPath, pending)
  let saving: Promise<void> = Promise.resolve()
  let saveQueued = false
  const save = () => {
    if (saveQueued) return
    saveQueued = true
    saving = saving.then(async () => {
      saveQueued = false
      await savePendingDownlinks(pendingPath, pending).catch((error) =>
        logger.error({ err: error }, 'pending downlinks not saved'),
      )
    })
  }
  const broadcast = (message: ToWorker) => {
    for (const worker of running.values()) sendTo(worker, message)
  }
  const owner = new DownlinkOwner(pending, broadcast, save, logger)
  const tap = (record: JournalRecord) => owner.record(record)

  const slots = new Map<number, WorkerJournal>()
  for (let slot = 0; slot < workers; slot++) {
    slots.set(slot, new WorkerJournal(slot, slotJournalDir(options.dataDir, slot), logger, tap))
  }
  const leftovers: IngestJournal[] = []
  const sources = new Map<number, JournalSource & { stats: WorkerJournal['stats'] }>(slots)
  // The demo's history goes through a journal of the primary's own, beside the workers' (it runs
  // while they listen, and the simulated devices' acks settle the tuners' commands it causes).
  let demoJournal: IngestJournal | undefined
  if (options.demo) {
    demoJournal = await IngestJournal.open(slotJournalDir(options.dataDir, DEMO_BACKFILL_SLOT), {
      onSkip: (skip) => logJournalSkip(logger, skip),
    })
    leftovers.push(demoJournal)
    sources.set(DEMO_BACKFILL_SLOT, tappedJournal(demoJournal, tap))
  }
  for (const slot of await leftoverJournalSlots(options.dataDir, workers)) {
    if (sources.has(slot)) continue
    const journal = await IngestJournal.open(slotJournalDir(options.dataDir, slot), {
      onSkip: (skip) => logJournalSkip(logger, skip),
    })
    leftovers.push(journal)
    sources.set(slot, journal)
  }

  // The damage the primary's replays found, beside what the workers count (summed on /metrics).
  registerJournalMetrics(registry, {
    stats: {
      get skippedRecords() {
        let sum = 0
        for (const source of sources.values()) sum += source.stats.skippedRecords
        return sum
      },
      get skippedBytes() {
        let sum = 0
        for (const source of sources.values()) sum += source.stats.skippedBytes
        return sum
      },
      failures: 0,
    },
  })
  const historyStore = openHistoryStore(plant, options.dataDir)
  const processor = new Processor({
    plant,
    bus,
    historyStore,
    logger: logger.child({ role: 'processor' }),
    journals: sources,
    checkpointPath: checkpointPath(options.dataDir),
    history,
    pipeline: { acceptOld: options.acceptOld === true, maxProcessNames: options.maxProcessNames },
  })
  let stopping = false
  let processorStarted = false
  const ready = () => processorStarted && !stopping && listening.size === workers
  const gateway = await createGateway({
    plant,
    bus,
    tokens,
    logger,
    registry,
    isReady: ready,
    mqttOverWebSocket: (stream, address) => {
      const proxyPort = [...listening.values()][0]?.proxyPort
      if (proxyPort === undefined) return stream.destroy()
      proxyToWorker(stream, address, proxyPort, clusterKey)
    },
  })
  await processor.start()
  processorStarted = true
  registerProcessorMetrics(registry, processor, history)
  await gateway.start()
  const httpPort = await gateway.listen({ host: options.host, port: options.httpPort })

  // Commands of the tuners: kept until delivered, offered by every worker that holds the device.
  await bus.subscribe('sites/+/devices/+/down', (topic, payload) => owner.command(topic, payload))

  // Workers: one per slot, started again if one exits unasked.
  // A worker runs its own entry point (worker-main.ts), with the primary's Node options (tsx).
  cluster.setupPrimary({ serialization: 'advanced', exec: WORKER_ENTRY, args: [] })
  const exits = new Map<number, Promise<void>>()
  let firstListening: (() => void) | undefined
  const allListening = new Promise<void>((resolve) => {
    firstListening = resolve
  })
  const restartDelay = new Map<number, number>()
  const fork = (slot: number) => {
    const worker = cluster.fork({ PLANTWATT_WORKER_SLOT: String(slot), PLANTWATT_CLUSTER_KEY: clusterKey })
    running.set(slot, worker)
    slots.get(slot)!.worker = worker
    // Gone once it exited and every message it sent before has been read.
    exits.set(
      slot,
      whenWorkerGone(worker, () =>
        logger.warn(
          { worker: slot },
          'a broker worker exited but its channel stayed open: what it had not forwarded is replayed from its journal at the next start',
        ),
      ),
    )
    worker.on('message', (message: FromWorker) => {
      switch (message.t) {
        case 'boot':
          sendTo(worker, { t: 'init', options: { ...options, demo: false }, workers })
          break
        case 'hello':
          // Replays from what the processor has applied of this slot: after a crash, the records it
          // made durable and acknowledged but had not yet forwarded.
          sendTo(worker, {
            t: 'start',
            afterSeq: processor.journalPositions().get(slot) ?? 0,
            pending: pending.entries(),
            countSkips: !slots.get(slot)!.replayedHere,
          })
          slots.get(slot)!.replayedHere = false
          break
        case 'records': {
          const records = decodeRecords(message.bytes)
          slots.get(slot)!.deliver(records)
          // Applied (the processor takes them synchronously): the worker's bound on what is in
          // flight towards this process (record-forwarder.ts) counts them off.
          sendTo(worker, { t: 'applied', records: records.length })
          break
        }
        case 'listening':
          listening.set(slot, { port: message.port, proxyPort: message.proxyPort })
          restartDelay.delete(slot)
          if (listening.size === workers) firstListening?.()
          break
        case 'delivered':
          owner.delivered(message.deviceId, message.n)
          break
        case 'metrics': {
          const waiting = metricsWaiting.get(message.id)
          if (!waiting) break
          waiting.results.push({ slot, metrics: message.metrics as WorkerMetrics })
          if (--waiting.left === 0) {
            metricsWaiting.delete(message.id)
            waiting.resolve(waiting.results)
          }
          break
        }
        case 'stopped':
          break
      }
    })
    worker.once('exit', (code, signal) => {
      if (running.get(slot) === worker) running.delete(slot)
      listening.delete(slot)
      if (stopping) return
      workerRestarts.inc()
      // Sessions reconnect (to any worker); the new worker replays what its journal holds
      // beyond what the processor applied. Restarts of a failing slot back off up to 5 s.
      const delay = restartDelay.get(slot) ?? 100
      restartDelay.set(slot, Math.min(5000, delay * 2))
      logger.error({ worker: slot, code, signal, restartInMs: delay }, 'broker worker exited: starting it again')
      setTimeout(() => {
        if (!stopping) fork(slot)
      }, delay).unref()
    })
  }
  for (let slot = 0; slot < workers; slot++) fork(slot)
  await allListening
  const mqttPort = [...listening.values()][0]!.port
  const brokerHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host
  const brokerUrl = `mqtt://${brokerHost.includes(':') ? `[${brokerHost}]` : brokerHost}:${mqttPort}`

  // Last: whoever waits for this record finds the whole
  // system up (and a signal after it finds the stop handlers installed).
  logger.info(
    { mqttPort, httpPort, host: options.host, devices: plant.devices.size, dataDir: options.dataDir, workers },
    'listening',
  )

  // The demo runs in the background, as in one process (up.ts): first the plant's history through
  // the primary's own journal, then its live devices, connected to the workers like any device.
  const demoAbort = new AbortController()
  let demo: Promise<Fleet | undefined> | undefined
  if (demoJournal) {
    const journal = demoJournal
    demo = (async () => {
      const history = await backfillDemo({
        plant: options.plant,
        journal,
        processor,
        bus,
        logger: logger.child({ role: 'demo' }),
        hours: options.demoHistoryHours,
        signal: demoAbort.signal,
      })
      if (!history || demoAbort.signal.aborted) return undefined
      const fleet = await startFleet({
        plant: options.plant,
        simulation: history.simulation,
        brokerUrl,
        deviceSecret,
        onError: (error) => logger.debug({ err: error }, 'demo device error'),
      })
      logger.info({ devices: fleet.stats.devices }, 'demo fleet started')
      return fleet
    })().catch((error) => {
      logger.error({ err: error }, 'the demo failed to start')
      return undefined
    })
  }

  let stopped: Promise<void> | undefined
  return {
    mqttPort,
    httpPort,
    stop() {
      stopped ??= (async () => {
        stopping = true
        demoAbort.abort()
        const fleet = await demo
        await fleet?.stop()
        // The workers first: they stop taking uplinks and forward what their journals made durable.
        for (const worker of running.values()) sendTo(worker, { t: 'stop' })
        const killTimer = setTimeout(() => {
          for (const worker of running.values()) worker.process.kill('SIGKILL')
        }, WORKER_STOP_MS)
        await Promise.all(exits.values())
        clearTimeout(killTimer)
        logger.debug('workers stopped')
        await processor.stop()
        logger.debug('processor stopped')
        for (const journal of leftovers) await journal.close()
        await historyStore.close()
        await history?.stop()
        logger.debug('history closed')
        await gateway.close()
        logger.debug('gateway closed')
        await bus.close()
        logger.debug('bus closed')
        await saving
      })()
      return stopped
    },
  }
}
