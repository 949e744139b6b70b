import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { ClassicLevel } from 'classic-level'
import type { Redis } from 'ioredis'

// The aedes backends: where sessions and queued QoS 1 downlinks live (persistence) and how
// messages travel between broker processes (mq). Pass them to createBroker; close the broker
// first, then the backends.
//
// Broker ids: aedes keys each queued packet by (broker id, a counter that starts at 0 with
// every broker instance), so every start needs an id of its own: aedes' default, a random UUID,
// does. A restarted broker that reused its id would reuse those keys and overwrite packets still
// queued for sleeping devices; on Redis a sleeping device then gets another device's command
// (seen with aedes 1.2 and aedes-persistence-redis 12). On LevelDB a device's queue is read in
// key order (broker id, then counter): ids that sort by start time keep it oldest-first across
// restarts, random ones do not. The Redis queue is a list, oldest first in any case.

const require = createRequire(import.meta.url)

// ioredis and mqemitter-redis are loaded by createRedisBackends only: the embedded default's
// broker workers never use Redis and would carry both in every process (issue 16, memory).
async function loadRedis() {
  const [{ Redis }, { default: MQEmitterRedis }] = await Promise.all([import('ioredis'), import('mqemitter-redis')])
  return { Redis, MQEmitterRedis }
}

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
/** How long close() waits for Redis to confirm before it drops the connections. */
const CLOSE_TIMEOUT_MS = 2000

interface MQEmitterRedisInstance extends AedesEmitter {
  state: NodeJS.EventEmitter
  close(callback: () => void): void
  removeListener(topic: string, listener: unknown, done?: () => void): void
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
  const { Redis, MQEmitterRedis } = await loadRedis()
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
  // aedes closes the emitter when the broker closes. mqemitter-redis then quit()s both
  // connections and waits for their 'end': while Redis is unreachable that never comes (ioredis
  // emits no 'end' for a connection that is reconnecting) and the subscriber's quit() rejects
  // unhandled later. So quit only connections that are up; otherwise drop them and move on.
  const quitEmitter = mq.close.bind(mq)
  mq.close = (callback) => {
    if (connections.pub.status === 'ready' && connections.sub.status === 'ready') return quitEmitter(callback)
    connections.pub.disconnect()
    connections.sub.disconnect()
    callback()
  }
  // Likewise an unsubscribe (a client leaving, the bus closing) would wait for Redis to confirm
  // it, up to ioredis' maxRetriesPerRequest (about 10 s), and hold up the broker's close. The
  // local listener goes at once; Redis hears of it when it is back.
  const removeListener = mq.removeListener.bind(mq)
  mq.removeListener = (topic, listener, done) => {
    if (done === undefined || connections.sub.status === 'ready') return removeListener(topic, listener, done)
    removeListener(topic, listener, () => {})
    setImmediate(done)
  }

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
        // The emitter first (a no-op if the broker closed it already), then the persistence's
        // connection: quit() lets the commands already sent complete. Only connections that are
        // up are waited for, and only for a bounded time; then every connection is dropped.
        let timer: NodeJS.Timeout | undefined
        await Promise.race([
          (async () => {
            await new Promise<void>((resolve) => mq.close(() => resolve()))
            if (connections.db.status === 'ready') await connections.db.quit().catch(onError)
          })(),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)
          }),
        ])
        clearTimeout(timer)
        for (const connection of all) connection.disconnect()
      })()
      return closed
    },
  }
}

export interface LevelPersistence {
  persistence: AedesPersistence
  /**
   * The broker id to run this start with: new at every start (a reused id would overwrite packets
   * still queued for sleeping devices), and sorting by start time, because LevelDB returns a
   * device's queue ordered by broker id, so commands queued across restarts keep their order.
   */
  brokerId: string
  /** Closes the database (after the broker has closed). Idempotent. */
  close(): Promise<void>
}

/**
 * The embedded default: persistent sessions and their queued QoS 1 downlinks in a LevelDB
 * database in `dir` (aedes-persistence-level on classic-level), so they survive a restart.
 * LevelDB locks the directory: a second process on the same data directory is refused here.
 */
export async function createLevelPersistence(dir: string): Promise<LevelPersistence> {
  // 0700: LevelDB makes its files with modes of its own; the directory keeps other users out.
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const db = new ClassicLevel(dir)
  try {
    await db.open()
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED') {
      throw new Error(`the broker's session store ${dir} is in use by another process`, { cause: error })
    }
    throw error
  }
  const levelPersistence = require('aedes-persistence-level') as LevelPersistenceFactory
  const persistence = levelPersistence(db)
  let closed: Promise<void> | undefined
  return {
    persistence,
    brokerId: `broker-${Date.now().toString(36).padStart(10, '0')}-${randomBytes(4).toString('hex')}`,
    close() {
      closed ??= persistence.destroy()
      return closed
    },
  }
}
