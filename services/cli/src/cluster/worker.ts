import { createServer, type Server, type Socket } from 'node:net'
import {
  type Broker,
  createBroker,
  createLevelPersistence,
  DEFAULT_LOGIN_GUARD,
  type LoginGuardOptions,
} from '@plantwatt/broker'
import { PlantIndex } from '@plantwatt/plant'
import { decodeUplink } from '@plantwatt/processor/uplink-decode'
import { IngestJournal, type JournalRecord, type Logger, loadDeviceSecret } from '@plantwatt/runtime'
import { Counter, Gauge, type Registry } from 'prom-client'
import {
  logJournalSkip,
  metricsRegistry,
  registerJournalMetrics,
  slotJournalDir,
  slotSessionsDir,
} from '../broker-support.ts'
import type { UpOptions } from '../up.ts'
import { WorkerDownlinks } from './downlinks.ts'
import type { FromWorker, ToWorker } from './protocol.ts'
import { decodeProxyHeader } from './proxy.ts'
import { RecordForwarder } from './record-forwarder.ts'

/**
 * The most a durable record waits in a worker for others to share its message to the primary: a
 * reading reaches the processor (and the live frames) this much later; its PUBACK does not wait.
 */
export const FORWARD_INTERVAL_MS = 10
/** A batch of this many records goes at once (about 0.5 MB of decoded packs). */
export const FORWARD_MAX_RECORDS = 4096
/**
 * Records forwarded and not yet applied by the primary beyond which a worker stops taking its devices'
 * uplinks (about 10 s of a 40,000-device plant's packs at one per 10 s, ~25 MB of decoded packs at
 * most in flight). PLANTWATT_FORWARD_MAX_UNAPPLIED sets another (tests).
 */
export const FORWARD_MAX_UNAPPLIED = 40_000

function forwardMaxUnapplied(): number {
  const value = Number(process.env.PLANTWATT_FORWARD_MAX_UNAPPLIED)
  return Number.isInteger(value) && value > 0 ? value : FORWARD_MAX_UNAPPLIED
}

/** The forwarder's bound on /metrics (summed over the workers by the primary). */
function registerForwarderMetrics(registry: Registry, forwarder: RecordForwarder): void {
  new Counter({
    name: 'plantwatt_up_worker_read_pauses_total',
    help: 'Times a broker worker stopped reading its devices because the primary had not applied what it forwarded',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(forwarder.stats.pauses)
    },
  })
  new Gauge({
    name: 'plantwatt_up_worker_unapplied_records',
    help: 'Records a broker worker forwarded that the primary has not applied yet',
    registers: [registry],
    collect() {
      this.set(forwarder.unapplied)
    },
  })
}

// One broker worker of `plantwatt up --workers N` (issue 16, docs/state-ownership.md): the MQTT
// sessions of the connections it accepted (node's cluster hands out connections round-robin), their
// authentication, limits and uplink fast path, and its own ingest journal, written before each
// PUBACK exactly as in the single process. What the journal made durable goes to the primary in one
// message per group commit; the PUBACK never waits for the primary.

/**
 * The login guard's budgets for one of `workers` brokers (docs/security.md): connections are
 * handed out round-robin, so a guesser's attempts spread over the workers and each counts about
 * 1/N of them; dividing the budgets keeps the whole close to CONTRACT.md §4's (5 failures of one
 * id from one address lock it out after at most 5 + N − 1 tries in all).
 */
export function workerLoginGuard(workers: number, base: LoginGuardOptions = DEFAULT_LOGIN_GUARD): LoginGuardOptions {
  return {
    ...base,
    maxFailures: Math.max(1, Math.ceil(base.maxFailures / workers)),
    addressFailureRatePerS: base.addressFailureRatePerS / workers,
    addressFailureBurst: Math.max(1, Math.ceil(base.addressFailureBurst / workers)),
  }
}

function send(message: FromWorker, callback?: () => void): void {
  if (!process.connected) return callback?.()
  process.send!(message, undefined, {}, () => callback?.())
}

export async function upWorker(options: UpOptions, logger: Logger, slot: number, workers: number): Promise<void> {
  const log = logger.child({ role: 'broker', worker: slot })
  const plant = new PlantIndex(options.plant)
  const deviceSecret = await loadDeviceSecret(options.dataDir, options.deviceSecret)
  const registry = metricsRegistry()
  // Its own session store: LevelDB locks its directory per process (docs/decisions.md).
  const sessions = await createLevelPersistence(slotSessionsDir(options.dataDir, slot))
  const journal = await IngestJournal.open(slotJournalDir(options.dataDir, slot), {
    onSkip: (skip) => logJournalSkip(log, skip),
  })
  // Damage found at open is counted by whoever replayed the journal first (see `start`).
  let countSkips = true
  registerJournalMetrics(registry, {
    stats: {
      get skippedRecords() {
        return countSkips ? journal.stats.skippedRecords : 0
      },
      get skippedBytes() {
        return countSkips ? journal.stats.skippedBytes : 0
      },
      get failures() {
        return journal.stats.failures
      },
    },
  })

  let downlinks: WorkerDownlinks | undefined
  const broker: Broker = await createBroker({
    plant,
    deviceSecret,
    registry,
    persistence: sessions.persistence,
    id: sessions.brokerId,
    logger: log,
    uplinkJournal: journal,
    // Nobody here can subscribe to an uplink (no internal clients; devices only to their own
    // `down`): the journal and the forwarder carry it to the processor, aedes need not publish it.
    deliverUplinks: false,
    limits: { login: workerLoginGuard(workers) },
    forwardDownlink: (deviceId, _topic, payload) => downlinks?.isPending(deviceId, payload) === true,
  })
  downlinks = new WorkerDownlinks(broker, send, log)

  // Durable records to the primary, several group commits in one message (record-forwarder.ts):
  // FORWARD_INTERVAL_MS is the most a reading waits here on its way to the processor.
  const forwarder = new RecordForwarder({
    intervalMs: FORWARD_INTERVAL_MS,
    maxRecords: FORWARD_MAX_RECORDS,
    maxUnapplied: forwardMaxUnapplied(),
    send: (bytes) => send({ t: 'records', bytes }),
    onPressure: (paused) => {
      if (paused) {
        broker.pauseReading()
        log.warn({ unapplied: forwarder.unapplied }, 'reading paused: the primary lags')
      } else {
        broker.resumeReading()
        log.info({ unapplied: forwarder.unapplied }, 'reading resumed')
      }
    },
  })
  registerForwarderMetrics(registry, forwarder)
  const flush = () => forwarder.flush()
  const acceptOld = options.acceptOld === true
  const forward = (record: JournalRecord) => {
    // Per-reading work stays here (issue 16): a device's uplink is decoded and validated against
    // the wall clock at receipt, and crosses as a binary pack; acks and anything else cross raw.
    const decoded = decodeUplink(plant, record.topic, record.payload, record.receivedAtMs, acceptOld)
    forwarder.push(decoded ? { ...record, decoded } : record)
  }

  let proxy: Server | undefined
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()))
      await broker.close()
      // Closing the journal waits for the appends in flight; their records are forwarded.
      await journal.close()
      flush()
      await sessions.close()
      await new Promise<void>((resolve) => send({ t: 'stopped' }, resolve))
      process.exit(0)
    })()
    return stopping
  }

  const start = async (afterSeq: number) => {
    // What the primary has not applied (it was forwarded but lost with a crashed worker, or never
    // sent): replayed into the forward stream before anything new.
    for await (const record of journal.replay(afterSeq)) forward(record)
    await journal.release(afterSeq)
    journal.onDurable = forward
    const port = await broker.listen({ host: options.host, port: options.mqttPort })
    proxy = createServer((socket: Socket) => {
      decodeProxyHeader(socket, process.env.PLANTWATT_CLUSTER_KEY ?? '', (address) => {
        broker.handleStream(socket, address)
      })
    })
    await new Promise<void>((resolve, reject) => {
      proxy!.once('error', reject)
      proxy!.listen(0, '127.0.0.1', () => resolve())
    })
    const proxyPort = (proxy.address() as { port: number }).port
    log.info({ mqttPort: port }, 'worker listening')
    send({ t: 'listening', port, proxyPort })
  }

  process.on('message', (message: ToWorker) => {
    switch (message.t) {
      case 'start':
        countSkips = message.countSkips
        downlinks!.receive(message)
        start(message.afterSeq).catch((error) => {
          log.fatal({ err: error }, 'worker could not start')
          process.exit(1)
        })
        break
      case 'applied':
        forwarder.applied(message.records)
        break
      case 'release':
        journal.release(message.seq).catch((error) => log.warn({ err: error }, 'journal release failed'))
        break
      case 'down':
      case 'settled':
        downlinks!.receive(message)
        break
      case 'metrics':
        registry.getMetricsAsJSON().then(
          (metrics) => send({ t: 'metrics', id: message.id, metrics }),
          () => send({ t: 'metrics', id: message.id, metrics: [] }),
        )
        break
      case 'stop':
        void stop()
        break
    }
  })
  // Ctrl-C reaches the whole process group: the primary stops the workers in order. A SIGTERM
  // sent to this worker alone stops it cleanly (the primary starts another for its slot).
  process.on('SIGINT', () => {})
  process.on('SIGTERM', () => void stop())
  send({ t: 'hello' })
}
