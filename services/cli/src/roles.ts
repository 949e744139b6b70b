import { createHash } from 'node:crypto'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { createBroker, createLevelPersistence, createRedisBackends, listenBrokerHttp } from '@plantwatt/broker'
import {
  createMqttBus,
  type InternalRole,
  internalClientId,
  internalKey,
  internalPassword,
  internalUsername,
} from '@plantwatt/bus'
import type { PlantModel } from '@plantwatt/contract'
import { createGateway } from '@plantwatt/gateway'
import { HistoryWriter } from '@plantwatt/history'
import { HistoryStore } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { Processor, registerProcessorMetrics } from '@plantwatt/processor'
import {
  type Logger,
  listenOps,
  loadDeviceSecret,
  prepareDataDirectory,
  removeStaleTemporaries,
  TokenStore,
} from '@plantwatt/runtime'

// The roles of CONTRACT.md §8 run one per process, joined through an MQTT broker: the aedes
// broker role (alone or clustered on Redis), or any external broker.

export interface RoleContext {
  plant: PlantModel
  dataDir: string
  deviceSecret: string | undefined
  /** PLANTWATT_INTERNAL_SECRET: the credentials of the processor and gateway (docs/broker.md). */
  internalSecret: string | undefined
  logger: Logger
}

import { metricsRegistry, sessionsDir } from './broker-support.ts'

export {
  journalDir,
  leftoverJournalSlots,
  logJournalSkip,
  metricsRegistry,
  registerJournalMetrics,
  sessionsDir,
  slotJournalDir,
  slotSessionsDir,
} from './broker-support.ts'

export interface RunningRole {
  stop(): Promise<void>
}

export function checkpointPath(dataDir: string): string {
  return join(dataDir, 'processor', 'checkpoint.v8')
}

/** The embedded history store of closed buckets (issue 13): one process writes it, the processor. */
export function historyStoreDir(dataDir: string): string {
  return join(dataDir, 'history')
}

/** §6: 1-minute buckets for at least the last 7 days of the site clock. */
const MIN_MINUTE_RETENTION_S = 7 * 86_400

/**
 * Opens <data-dir>/history with 1-minute buckets kept at least the largest `maxAgeS` of the sites
 * (a reading that late still revises its minute, CONTRACT.md §7) and 7 days (§6).
 */
export function openHistoryStore(plant: PlantIndex, dataDir: string): HistoryStore {
  let maxAgeS = 0
  for (const site of plant.sites.values()) maxAgeS = Math.max(maxAgeS, site.maxAgeS)
  // The store's 1m default is 7 days and its floor max(7 days, maxAgeS): ask for the floor.
  return new HistoryStore({
    path: historyStoreDir(dataDir),
    maxAgeS,
    retention: { '1m': Math.max(MIN_MINUTE_RETENTION_S, maxAgeS) },
  })
}

export interface InfluxOptions {
  url?: string
  org?: string
  bucket?: string
  token?: string
}

/** The InfluxDB writer when --influx-url is given (its spill directory in the data directory). */
export async function openHistory(
  influx: InfluxOptions,
  dataDir: string,
  logger: Logger,
): Promise<HistoryWriter | undefined> {
  if (!influx.url) return undefined
  if (!influx.org || !influx.bucket) throw new Error('--influx-url needs --influx-org and --influx-bucket')
  const writer = new HistoryWriter({
    url: influx.url,
    org: influx.org,
    bucket: influx.bucket,
    token: influx.token,
    directory: join(dataDir, 'influx-spool'),
    logger: logger.child({ role: 'history' }),
  })
  await writer.start()
  logger.info({ url: influx.url, org: influx.org, bucket: influx.bucket }, 'writing history to InfluxDB')
  return writer
}

/** The token store, with the first admin token made and printed once if needed (CONTRACT.md §4). */
export async function openTokens(dataDir: string, adminToken: string | undefined): Promise<TokenStore> {
  const tokens = await TokenStore.open(dataDir)
  const generated = await tokens.ensureBootstrapAdmin(adminToken)
  if (generated) {
    // On stderr, never in the logs; only its hash is stored.
    process.stderr.write(
      `\nplantwatt: first start: admin token (shown once, stored hashed in ${dataDir}):\n\n  ${generated}\n\n`,
    )
  }
  return tokens
}

async function prepare(context: RoleContext) {
  await prepareDataDirectory(context.dataDir, context.logger)
  await cleanDataDir(context.dataDir, context.logger)
  return loadDeviceSecret(context.dataDir, context.deviceSecret)
}

/**
 * At start, before anything writes: removes the temporaries a crash left between create and
 * rename (issue 12 finding 12), so that a full disk does not stay full of them.
 */
export async function cleanDataDir(dataDir: string, logger: Logger): Promise<void> {
  const removed = await removeStaleTemporaries(dataDir)
  if (removed.length > 0) logger.warn({ removed }, 'stale temporary files removed from the data directory')
}

export async function runBroker(
  context: RoleContext,
  options: { host: string; mqttPort: number; httpPort: number; redisUrl?: string },
): Promise<RunningRole> {
  const deviceSecret = await prepare(context)
  const plant = new PlantIndex(context.plant)
  const registry = metricsRegistry()
  const logger = context.logger.child({ role: 'broker' })
  // Clustered on Redis, or alone with sessions and queued downlinks kept in the data directory.
  const backends = options.redisUrl
    ? await createRedisBackends({
        redisUrl: options.redisUrl,
        onError: (error) => logger.error({ err: error }, 'redis'),
      })
    : await createLevelPersistence(sessionsDir(context.dataDir))
  const broker = await createBroker({
    plant,
    deviceSecret,
    internalSecret: context.internalSecret,
    registry,
    logger,
    persistence: backends.persistence,
    mq: 'mq' in backends ? backends.mq : undefined,
    // On Redis aedes picks a random id per start; a reused one would overwrite queued downlinks.
    id: 'brokerId' in backends ? backends.brokerId : undefined,
  })
  let ready = false
  const mqttPort = await broker.listen({ host: options.host, port: options.mqttPort })
  const http = await listenBrokerHttp(broker, registry, {
    host: options.host,
    port: options.httpPort,
    isReady: () => ready,
  })
  ready = true
  context.logger.info(
    { role: 'broker', mqttPort, httpPort: http.port, cluster: Boolean(options.redisUrl) },
    'listening',
  )
  return {
    async stop() {
      ready = false
      await broker.close()
      await http.close()
      await backends.close()
    },
  }
}

/**
 * The default instance id of a role's MQTT client (client id `plantwatt-{role}-{instance}`): the
 * host name (dots allowed: internal client ids have their own namespace, docs/broker.md) and a hash
 * of the data directory, at most 40 characters. It is the same at every start of the role on that
 * host and data directory, so a restarted processor resumes its persistent session instead of
 * leaving a dead one queueing behind it (issue 12 finding 15). `perProcess` adds the pid, for
 * clean sessions that several processes may share a host and data directory with.
 */
export function defaultInstanceId(dataDir: string, perProcess = false, host = hostname()): string {
  const directory = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 8)
  const suffix = perProcess ? `-${directory}-${process.pid}` : `-${directory}`
  return `${host.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40 - suffix.length)}${suffix}`
}

/**
 * The role's MQTT client of the broker, with its own credentials (docs/broker.md): the internal
 * key is PLANTWATT_INTERNAL_SECRET, or derived from the device secret every role already shares.
 *
 * Sessions (issue 12 finding 15): the processor keeps a persistent session under a stable client
 * id, so readings published while it restarts wait for it (the broker bounds that queue, see
 * services/broker/src/internal-sessions.ts). The gateway needs no queued history: at start it asks
 * the processor for every figure and for the alert and setpoint events it missed (sync topics of
 * docs/internal-bus.md), so it connects with a clean session and leaves nothing behind; several
 * gateways may share a host and data directory (the token store), hence a pid in its default id.
 */
function internalBus(
  context: RoleContext,
  deviceSecret: string,
  brokerUrl: string,
  role: InternalRole,
  instanceId: string | undefined,
) {
  const key = internalKey(deviceSecret, context.internalSecret)
  const persistent = role === 'processor'
  const instance = instanceId ?? defaultInstanceId(context.dataDir, !persistent)
  return createMqttBus({
    url: brokerUrl,
    clientId: internalClientId(role, instance),
    username: internalUsername(role),
    password: internalPassword(key, role),
    clean: !persistent,
    onError: (error) => context.logger.warn({ err: error, role }, 'bus connection error'),
  })
}

export async function runProcessor(
  context: RoleContext,
  options: {
    brokerUrl: string
    influx: InfluxOptions
    host: string
    httpPort: number
    instanceId?: string
    acceptOld?: boolean
    maxProcessNames?: number
  },
): Promise<RunningRole> {
  const deviceSecret = await prepare(context)
  const history = await openHistory(options.influx, context.dataDir, context.logger)
  const bus = await internalBus(context, deviceSecret, options.brokerUrl, 'processor', options.instanceId)
  const plant = new PlantIndex(context.plant)
  const historyStore = openHistoryStore(plant, context.dataDir)
  const processor = new Processor({
    plant,
    bus,
    historyStore,
    logger: context.logger.child({ role: 'processor' }),
    checkpointPath: checkpointPath(context.dataDir),
    history,
    pipeline: { acceptOld: options.acceptOld === true, maxProcessNames: options.maxProcessNames },
  })
  let ready = false
  const registry = metricsRegistry()
  // Health and metrics on their own port: the processor has no API, but it must be watched.
  const http = await listenOps({ registry, isReady: () => ready, host: options.host, port: options.httpPort })
  await processor.start()
  registerProcessorMetrics(registry, processor, history)
  ready = true
  context.logger.info({ role: 'processor', broker: options.brokerUrl, httpPort: http.port }, 'processor subscribed')
  return {
    async stop() {
      ready = false
      await processor.stop()
      await historyStore.close()
      await history?.stop()
      await bus.close()
      await http.close()
    },
  }
}

export async function runGateway(
  context: RoleContext,
  options: {
    brokerUrl: string
    host: string
    httpPort: number
    adminToken: string | undefined
    instanceId?: string
  },
): Promise<RunningRole> {
  const deviceSecret = await prepare(context)
  const tokens = await openTokens(context.dataDir, options.adminToken)
  const bus = await internalBus(context, deviceSecret, options.brokerUrl, 'gateway', options.instanceId)
  let ready = false
  const gateway = await createGateway({
    plant: new PlantIndex(context.plant),
    bus,
    tokens,
    logger: context.logger,
    registry: metricsRegistry(),
    isReady: () => ready,
  })
  await gateway.start()
  const httpPort = await gateway.listen({ host: options.host, port: options.httpPort })
  ready = true
  context.logger.info({ role: 'gateway', httpPort, broker: options.brokerUrl }, 'listening')
  return {
    async stop() {
      ready = false
      await gateway.close()
      await bus.close()
    },
  }
}
