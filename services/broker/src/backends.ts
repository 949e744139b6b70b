import { createRequire } from 'node:module'
import { ClassicLevel } from 'classic-level'
import { Redis } from 'ioredis'
import MQEmitterRedis from 'mqemitter-redis'

// The aedes backends: where sessions and queued QoS 1 downlinks live (persistence) and how
// messages travel between broker processes (mq). Pass them to createBroker; close the broker
// first, then the backends.
//
// Broker ids: aedes keys each queued packet by (broker id, a counter that starts at 0 with
// every broker instance). Leave createBroker's `id` unset (aedes picks a random one per start):
// a restarted broker that reused its id would reuse those keys and overwrite packets still
// queued for sleeping devices (in Redis even another device's queue).

const require = createRequire(import.meta.url)

/** An aedes 1.x persistence (the async API of aedes-persistence 11): aedes calls `setup` itself. */
export interface AedesPersistence {
  setup(broker: unknown): Promise<void>
  destroy(): Promise<void>
}

/** An mqemitter, as aedes uses it; aedes closes it when the broker closes. */
export interface AedesEmitter {
  close(callback: () => void): void
}

export interface RedisBackends {
  mq: AedesEmitter
  persistence: AedesPersistence
  /** Closes the Redis connections (and the emitter, if the broker has not). Idempotent. */
  close(): Promise<void>
}

export interface RedisBackendsOptions {
  /** `redis://[:password@]host:port[/db]` (or `rediss://`). */
  redisUrl: string
  /**
   * Namespace for several plantwatt clusters on one Redis: prefixes every key, and the pub/sub
   * channels as one extra topic level (`{keyPrefix}/{topic}`). Letters, digits, `_ . : -`.
   */
  keyPrefix?: string
  /** Errors of the Redis connections after start-up (ioredis reconnects by itself). */
  onError?: (error: Error) => void
}

const KEY_PREFIX_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/

interface MQEmitterRedisInstance extends AedesEmitter {
  state: NodeJS.EventEmitter
}
type MQEmitterRedisOptions = { subConn: Redis; pubConn: Redis; matchEmptyLevels: boolean; concurrency: number }
type MQEmitterRedisPrefixClass = new (prefix: string, options: MQEmitterRedisOptions) => MQEmitterRedisInstance
type RedisPersistenceFactory = (options: { conn: Redis }) => AedesPersistence
type LevelPersistenceFactory = (db: ClassicLevel) => AedesPersistence

/** Resolves once the connection is ready; rejects on its first error, so a wrong URL fails fast. */
function ready(connection: Redis, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = () => {
      settle()
      resolve()
    }
    const onError = (error: Error) => {
      settle()
      reject(new Error(`cannot reach Redis at ${redactUrl(url)}: ${error.message}`, { cause: error }))
    }
    const settle = () => {
      connection.off('ready', onReady)
      connection.off('error', onError)
    }
    connection.on('ready', onReady)
    connection.on('error', onError)
  })
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparseable URL)'
  }
}

/**
 * aedes on Redis (mqemitter-redis + aedes-persistence-redis): broker processes on one Redis act
 * as one broker. A message published on any of them reaches subscribers on all of them (also
 * the in-process bus of each), and persistent sessions with their queued QoS 1 messages live in
 * Redis, so a device may come back on any broker, also after the one that queued them restarted.
 */
export async function createRedisBackends(options: RedisBackendsOptions): Promise<RedisBackends> {
  const { redisUrl, keyPrefix, onError = () => {} } = options
  if (keyPrefix !== undefined && !KEY_PREFIX_PATTERN.test(keyPrefix)) {
    throw new Error(`keyPrefix must match ${KEY_PREFIX_PATTERN}: ${JSON.stringify(keyPrefix)}`)
  }
  const keys = keyPrefix === undefined ? {} : { keyPrefix: `${keyPrefix}:` }
  // Three connections: the persistence's, and the emitter's publisher and subscriber (a
  // subscribed Redis connection can do nothing else). ioredis does not prefix channels.
  const connections = {
    db: new Redis(redisUrl, keys),
    pub: new Redis(redisUrl),
    sub: new Redis(redisUrl),
  }
  const all = Object.values(connections)
  try {
    await Promise.all(all.map((connection) => ready(connection, redisUrl)))
  } catch (error) {
    for (const connection of all) connection.disconnect()
    throw error
  }
  for (const connection of all) connection.on('error', onError)

  const emitterOptions: MQEmitterRedisOptions = {
    subConn: connections.sub,
    pubConn: connections.pub,
    // As aedes' own emitter: `a/#` also matches `a` [MQTT-4.7.1-3].
    matchEmptyLevels: true,
    // mqemitter's default (0) is unbounded; aedes gives its own emitter 100.
    concurrency: 100,
  }
  const mq: MQEmitterRedisInstance =
    keyPrefix === undefined
      ? (MQEmitterRedis(emitterOptions) as unknown as MQEmitterRedisInstance)
      : new (MQEmitterRedis as unknown as { MQEmitterRedisPrefix: MQEmitterRedisPrefixClass }).MQEmitterRedisPrefix(
          `${keyPrefix}/`,
          emitterOptions,
        )
  // Without a listener, mqemitter-redis' re-emitted connection errors would be thrown.
  mq.state.on('error', onError)

  // The main export, not the package's bare asyncPersistence.js: aedes 1.2 pipes
  // createRetainedStreamCombi() into a stream, and only the main export's wrapper turns the
  // bare class's async generators into Readables (the bare class crashes the broker on SUBSCRIBE).
  const redisPersistence = require('aedes-persistence-redis') as RedisPersistenceFactory
  const persistence = redisPersistence({ conn: connections.db })

  let closed: Promise<void> | undefined
  return {
    mq,
    persistence,
    close() {
      closed ??= (async () => {
        // Closing the persistence unsubscribes it from the emitter (a no-op if the broker
        // closed the emitter already) and disconnects its connection; then the emitter quits
        // its two (a no-op if the broker closed it).
        await persistence.destroy().catch(onError)
        await new Promise<void>((resolve) => mq.close(() => resolve()))
        for (const connection of all) connection.disconnect()
      })()
      return closed
    },
  }
}

export interface LevelPersistence {
  persistence: AedesPersistence
  /** Closes the database (after the broker has closed). Idempotent. */
  close(): Promise<void>
}

/**
 * The embedded default: persistent sessions and their queued QoS 1 downlinks in a LevelDB
 * database in `dir` (aedes-persistence-level on classic-level), so they survive a restart.
 * LevelDB locks the directory: a second process on the same data directory is refused here.
 */
export async function createLevelPersistence(dir: string): Promise<LevelPersistence> {
  const db = new ClassicLevel(dir)
  await db.open()
  const levelPersistence = require('aedes-persistence-level') as LevelPersistenceFactory
  const persistence = levelPersistence(db)
  let closed: Promise<void> | undefined
  return {
    persistence,
    close() {
      closed ??= persistence.destroy()
      return closed
    },
  }
}
