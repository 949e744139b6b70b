import { createBroker, createLevelPersistence } from '@plantwatt/broker'
import type { PlantModel } from '@plantwatt/contract'
import { type Fleet, startFleet } from '@plantwatt/fleet'
import { createGateway } from '@plantwatt/gateway'
import { PlantIndex } from '@plantwatt/plant'
import { type JournalSource, Processor, registerProcessorMetrics } from '@plantwatt/processor'
import { IngestJournal, type Logger, loadDeviceSecret, prepareDataDirectory } from '@plantwatt/runtime'
import { upPrimary } from './cluster/primary.ts'
import { backfillDemo } from './demo-backfill.ts'
import {
  checkpointPath,
  cleanDataDir,
  journalDir,
  leftoverJournalSlots,
  logJournalSkip,
  metricsRegistry,
  openHistory,
  openHistoryStore,
  openTokens,
  registerJournalMetrics,
  sessionsDir,
  slotJournalDir,
} from './roles.ts'

export interface UpOptions {
  plant: PlantModel
  demo: boolean
  dataDir: string
  host: string
  mqttPort: number
  httpPort: number
  adminToken: string | undefined
  deviceSecret: string | undefined
  influx: { url?: string; org?: string; bucket?: string; token?: string }
  /** `--accept-old` (CONTRACT.md §7): take readings older than maxAgeS behind the wall clock. */
  acceptOld?: boolean
  /** `--max-process-names` (CONTRACT.md §2): distinct process-variable names per device, default 16. */
  maxProcessNames?: number
  /** `--demo-history`: hours of history the demo makes before its devices go live (default 48). */
  demoHistoryHours?: number
  /**
   * `--workers` (issue 16): broker processes sharing the MQTT port, each with its own sessions and
   * ingest journal, beside the primary's processor and gateway. 1 (the default here): everything in
   * one process, joined by the in-process bus.
   */
  workers?: number
}

export interface RunningSystem {
  mqttPort: number
  httpPort: number
  stop(): Promise<void>
}

/**
 * `plantwatt up`. With one worker, broker, processor and gateway in one process; with several, the
 * primary (processor, gateway) and its broker workers (cluster/primary.ts; each worker runs
 * cluster/worker-main.ts).
 */
export async function up(options: UpOptions, logger: Logger): Promise<RunningSystem> {
  const workers = options.workers ?? 1
  if (workers <= 1) return upSingle(options, logger)
  return upPrimary(options, logger, workers)
}

/**
 * `plantwatt up --workers 1`: broker, processor and gateway in one process (the embedded default),
 * joined by the in-process bus on the embedded broker. Start order is ingest last; stop is the reverse.
 */
export async function upSingle(options: UpOptions, logger: Logger): Promise<RunningSystem> {
  const plant = new PlantIndex(options.plant)
  await prepareDataDirectory(options.dataDir, logger)
  await cleanDataDir(options.dataDir, logger)
  const deviceSecret = await loadDeviceSecret(options.dataDir, options.deviceSecret)
  const tokens = await openTokens(options.dataDir, options.adminToken)
  const history = await openHistory(options.influx, options.dataDir, logger)

  let ready = false
  const registry = metricsRegistry()
  // Sessions and downlinks queued for sleeping devices survive a restart (DESIGN.md).
  const sessions = await createLevelPersistence(sessionsDir(options.dataDir))
  // Every uplink is on disk before the broker acknowledges it; the processor reads it from there.
  const journal = await IngestJournal.open(journalDir(options.dataDir), {
    onSkip: (skip) => logJournalSkip(logger, skip),
  })
  if (journal.stats.tornTailBytes > 0) {
    logger.warn(
      { bytes: journal.stats.tornTailBytes },
      'ingest journal: a torn last record (never acknowledged) cut off',
    )
  }
  registerJournalMetrics(registry, journal)
  // Journals of the other worker slots a start with more workers left: replayed, then released.
  const leftovers: IngestJournal[] = []
  const journals = new Map<number, JournalSource>([[0, journal]])
  for (const slot of await leftoverJournalSlots(options.dataDir, 1)) {
    const leftover = await IngestJournal.open(slotJournalDir(options.dataDir, slot), {
      onSkip: (skip) => logJournalSkip(logger, skip),
    })
    leftovers.push(leftover)
    journals.set(slot, leftover)
  }
  const broker = await createBroker({
    plant,
    deviceSecret,
    registry,
    persistence: sessions.persistence,
    id: sessions.brokerId,
    logger: logger.child({ role: 'broker' }),
    uplinkJournal: journal,
  })
  const historyStore = openHistoryStore(plant, options.dataDir)
  const processor = new Processor({
    plant,
    bus: broker.bus,
    historyStore,
    logger: logger.child({ role: 'processor' }),
    journals,
    checkpointPath: checkpointPath(options.dataDir),
    history,
    pipeline: { acceptOld: options.acceptOld === true, maxProcessNames: options.maxProcessNames },
  })
  const gateway = await createGateway({
    plant,
    bus: broker.bus,
    tokens,
    logger,
    registry,
    isReady: () => ready,
    mqttOverWebSocket: broker.handleStream,
  })
  await processor.start()
  registerProcessorMetrics(registry, processor, history)
  await gateway.start()
  const httpPort = await gateway.listen({ host: options.host, port: options.httpPort })
  const mqttPort = await broker.listen({ host: options.host, port: options.mqttPort })
  ready = true
  logger.info(
    { mqttPort, httpPort, host: options.host, devices: plant.devices.size, dataDir: options.dataDir, workers: 1 },
    'listening',
  )

  // The demo runs in the background: first the plant's history (issue 17), then its live devices.
  // The API answers meanwhile, and a stop aborts the history between steps.
  const demoAbort = new AbortController()
  let demo: Promise<Fleet | undefined> | undefined
  if (options.demo) {
    const brokerHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host
    demo = (async () => {
      const history = await backfillDemo({
        plant: options.plant,
        journal,
        processor,
        bus: broker.bus,
        logger: logger.child({ role: 'demo' }),
        hours: options.demoHistoryHours,
        signal: demoAbort.signal,
      })
      if (!history || demoAbort.signal.aborted) return undefined
      const fleet = await startFleet({
        plant: options.plant,
        simulation: history.simulation,
        brokerUrl: `mqtt://${brokerHost.includes(':') ? `[${brokerHost}]` : brokerHost}:${mqttPort}`,
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

  let stopping: Promise<void> | undefined
  return {
    mqttPort,
    httpPort,
    stop() {
      stopping ??= (async () => {
        ready = false
        demoAbort.abort()
        const fleet = await demo
        await fleet?.stop()
        await broker.close()
        await journal.close()
        await processor.stop()
        for (const leftover of leftovers) await leftover.close()
        await historyStore.close()
        await history?.stop()
        await gateway.close()
        await sessions.close()
      })()
      return stopping
    },
  }
}
