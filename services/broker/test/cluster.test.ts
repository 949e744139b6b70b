import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { Redis } from 'ioredis'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import pino from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type RunningRedis, startRedis } from '../../../test/support/redis-server.ts'
import { createLevelPersistence, createRedisBackends } from '../src/backends.ts'
import { type Broker, createBroker } from '../src/broker.ts'

// Issue #3, clustering and persistent sessions: brokers on one real redis-server (Debian's,
// started on a free port) act as one broker, and a sleeping device's queued command survives
// the restart of the broker that queued it — on Redis, and on the embedded LevelDB persistence.

const SECRET = 'cluster-test-secret'
const DEVICE = '860100000000123'
const OTHER = '860100000000223'
const down = (id: string) => `sites/yibin/devices/${id}/down`
const up = (id: string) => `sites/yibin/devices/${id}/up`
const command = (id: string) =>
  JSON.stringify({ type: 'setpoint', id, name: 'fan_hz', value: 42, issuedAt: 1732250000 })

interface Node {
  broker: Broker
  url: string
  /** Closes the broker, then its backends. Idempotent. */
  close(): Promise<void>
}

/** Cleanups of the running test, run last-in first-out after it, pass or fail. */
const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  const failures: unknown[] = []
  while (cleanups.length > 0) await cleanups.pop()!().catch((error) => failures.push(error))
  if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed')
})

async function startNode(backends: { persistence: unknown; mq?: unknown; close(): Promise<void> }, id?: string) {
  const broker = await createBroker({
    plant: new PlantIndex(examplePlant()),
    deviceSecret: SECRET,
    logger: pino({ level: 'silent' }),
    persistence: backends.persistence,
    mq: backends.mq,
    id,
  }).catch(async (error) => {
    await backends.close()
    throw error
  })
  let closed: Promise<void> | undefined
  const close = () => {
    closed ??= broker.close().then(() => backends.close())
    return closed
  }
  cleanups.push(close)
  const port = await broker.listen({ host: '127.0.0.1', port: 0 })
  return { broker, url: `mqtt://127.0.0.1:${port}`, close } satisfies Node
}

type Inbox = ReturnType<typeof inbox>

/** Every message a device receives, and a wait for the first whose payload matches. */
function inbox(device: MqttClient) {
  const received: { topic: string; payload: string; qos: number }[] = []
  const waiters: { payload: string; resolve: () => void }[] = []
  device.on('message', (topic, payload, packet) => {
    received.push({ topic, payload: payload.toString(), qos: packet.qos })
    for (const waiter of waiters.filter((entry) => entry.payload === payload.toString())) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
  })
  return {
    received,
    payloads: () => received.map((message) => message.payload),
    waitFor: (payload: string) =>
      received.some((message) => message.payload === payload)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ payload, resolve })),
  }
}

/**
 * A device with its own credentials, on a persistent session unless told otherwise. Its inbox
 * listens before the CONNACK: queued messages may arrive in the same chunk.
 */
async function connectDevice(
  node: Node,
  id: string,
  overrides: Partial<IClientOptions> = {},
): Promise<{ device: MqttClient; messages: Inbox }> {
  const device = mqtt.connect(node.url, {
    clientId: id,
    username: id,
    password: deriveDevicePassword(SECRET, id),
    protocolVersion: 4,
    reconnectPeriod: 0,
    clean: false,
    ...overrides,
  })
  cleanups.push(() => device.endAsync(true))
  const messages = inbox(device)
  await new Promise<void>((resolve, reject) => {
    device.once('connect', () => resolve())
    device.once('error', reject)
  })
  return { device, messages }
}

/**
 * Resolves once the broker has finished a device's disconnect (aedes announces it on
 * `$SYS/{brokerId}/disconnect/clients`), so a command published next is queued, not sent.
 */
async function disconnectedOn(node: Node, clientId: string): Promise<() => Promise<void>> {
  let resolveGone!: () => void
  const gone = new Promise<void>((resolve) => {
    resolveGone = resolve
  })
  const unsubscribe = await node.broker.bus.subscribe('$SYS/+/disconnect/clients', (_topic, payload) => {
    if (payload.toString() === clientId) resolveGone()
  })
  return async () => {
    await gone
    await unsubscribe()
  }
}

/** A device subscribes to its down topic on a persistent session, then goes to sleep. */
async function subscribeAndSleep(node: Node, id: string): Promise<void> {
  const { device } = await connectDevice(node, id)
  expect(await device.subscribeAsync(down(id), { qos: 1 })).toEqual([{ topic: down(id), qos: 1 }])
  const asleep = await disconnectedOn(node, id)
  await device.endAsync()
  await asleep()
}

/**
 * The device wakes on `node` and gets `queued` (published while it slept) exactly once: in this
 * session nothing but `queued` and a live marker, and at its next wake nothing of this session
 * again, only what was queued since (each queue is delivered in order, oldest first).
 */
async function wakeAndReceiveOnce(node: Node, id: string, queued: string): Promise<void> {
  const { device, messages } = await connectDevice(node, id)
  await messages.waitFor(queued)
  expect(messages.received[0]).toMatchObject({ topic: down(id), qos: 1 })
  await node.broker.bus.publish(down(id), Buffer.from('live marker'), { qos: 1 })
  await messages.waitFor('live marker')
  expect(messages.payloads()).toEqual([queued, 'live marker'])

  const asleep = await disconnectedOn(node, id)
  await device.endAsync()
  await asleep()
  await node.broker.bus.publish(down(id), Buffer.from('next command'), { qos: 1 })
  const { messages: again } = await connectDevice(node, id)
  await again.waitFor('next command')
  expect(again.payloads()).toEqual(['next command'])
}

describe('broker cluster on Redis', () => {
  let redis: RunningRedis
  let prefixes = 0
  /** Each test its own namespace on the one redis-server, so sessions do not leak between tests. */
  const freshPrefix = () => `cluster-test-${++prefixes}`

  const redisNode = async (keyPrefix: string | undefined) =>
    startNode(await createRedisBackends({ redisUrl: redis.url, keyPrefix }))

  beforeAll(async () => {
    redis = await startRedis()
  })

  afterAll(async () => {
    await redis?.stop()
  })

  it('delivers a command published through broker A to a device connected to broker B', async () => {
    // No key prefix here: the plain layout, as a single cluster on its own Redis has it.
    const a = await redisNode(undefined)
    const b = await redisNode(undefined)
    const { device, messages } = await connectDevice(b, DEVICE, { clean: true })
    // The SUBACK comes once B's emitter is subscribed on Redis.
    await device.subscribeAsync(down(DEVICE), { qos: 1 })
    await a.broker.bus.publish(down(DEVICE), Buffer.from(command('c-1')), { qos: 1 })
    await messages.waitFor(command('c-1'))
    expect(messages.received).toEqual([{ topic: down(DEVICE), payload: command('c-1'), qos: 1 }])
  })

  for (const wakeOn of ['the restarted broker A', 'broker B'] as const) {
    it(`keeps a sleeping device's command through a restart of the broker that queued it; it wakes on ${wakeOn}`, async () => {
      const keyPrefix = freshPrefix()
      let a = await redisNode(keyPrefix)
      const b = await redisNode(keyPrefix)
      await subscribeAndSleep(a, DEVICE)
      await a.broker.bus.publish(down(DEVICE), Buffer.from(command('c-2')), { qos: 1 })

      await a.close()
      // A new process on the same Redis: a new broker id (aedes' default), the same sessions.
      a = await redisNode(keyPrefix)
      await wakeAndReceiveOnce(wakeOn === 'broker B' ? b : a, DEVICE, command('c-2'))
    })
  }

  it('carries readings published on either broker to the in-process bus of each', async () => {
    const keyPrefix = freshPrefix()
    const a = await redisNode(keyPrefix)
    const b = await redisNode(keyPrefix)
    const seenBy = async (node: Node) => {
      const topics: string[] = []
      let resolveBoth!: () => void
      const both = new Promise<void>((resolve) => {
        resolveBoth = resolve
      })
      await node.broker.bus.subscribe('sites/+/devices/+/up', (topic) => {
        topics.push(topic)
        if (topics.length === 2) resolveBoth()
      })
      return { topics, both }
    }
    const onA = await seenBy(a)
    const onB = await seenBy(b)
    const { device: deviceOnA } = await connectDevice(a, DEVICE, { clean: true })
    const { device: deviceOnB } = await connectDevice(b, OTHER, { clean: true })
    await deviceOnA.publishAsync(up(DEVICE), '[{"n":"power","v":1}]', { qos: 1 })
    await deviceOnB.publishAsync(up(OTHER), '[{"n":"power","v":2}]', { qos: 1 })
    await Promise.all([onA.both, onB.both])
    // Every broker's bus sees every reading once: in a cluster, one processor (or one per
    // partition) subscribes, not one per broker.
    expect(onA.topics.sort()).toEqual([up(DEVICE), up(OTHER)])
    expect(onB.topics.sort()).toEqual([up(DEVICE), up(OTHER)])
  })

  it('keeps clusters with different key prefixes apart on one Redis', async () => {
    const mine = freshPrefix()
    const theirs = freshPrefix()
    const a = await redisNode(mine)
    const c = await redisNode(theirs)
    const seenOnA: string[] = []
    let resolveOwn!: () => void
    const ownSeen = new Promise<void>((resolve) => {
      resolveOwn = resolve
    })
    await a.broker.bus.subscribe('sites/+/devices/+/up', (topic) => {
      seenOnA.push(topic)
      if (topic === up(DEVICE)) resolveOwn()
    })
    let resolveForeign!: () => void
    const foreignSeen = new Promise<void>((resolve) => {
      resolveForeign = resolve
    })
    await c.broker.bus.subscribe('sites/+/devices/+/up', () => resolveForeign())

    const { device: deviceOnC } = await connectDevice(c, OTHER, { clean: true })
    await deviceOnC.publishAsync(up(OTHER), '[{"n":"power","v":2}]', { qos: 1 })
    await foreignSeen
    // Redis hands A's subscriber connection its messages in publish order: had A been
    // subscribed to C's channels, C's reading would come before this one.
    const { device: deviceOnA } = await connectDevice(a, DEVICE)
    await deviceOnA.publishAsync(up(DEVICE), '[{"n":"power","v":1}]', { qos: 1 })
    await ownSeen
    expect(seenOnA).toEqual([up(DEVICE)])

    const inspector = new Redis(redis.url)
    cleanups.push(async () => inspector.disconnect())
    // Sessions are kept under the prefix too, and nothing on this Redis is outside a prefix.
    await deviceOnA.subscribeAsync(down(DEVICE), { qos: 1 })
    const keys = await inspector.keys('*')
    expect(keys).toContain(`${mine}:client:${DEVICE}`)
    expect(keys.filter((key) => !/^cluster-test-\d+:/.test(key))).toEqual([])
  })

  it('shuts down promptly while Redis is unreachable', async () => {
    const ownRedis = await startRedis()
    cleanups.push(() => ownRedis.stop())
    let resolveLost!: () => void
    const lost = new Promise<void>((resolve) => {
      resolveLost = resolve
    })
    const node = await startNode(await createRedisBackends({ redisUrl: ownRedis.url, onError: () => resolveLost() }))
    await node.broker.bus.subscribe('sites/+/devices/+/up', () => {})
    const { device } = await connectDevice(node, DEVICE)
    await device.subscribeAsync(down(DEVICE), { qos: 1 })
    await ownRedis.stop()
    await lost
    // Unsubscribing (the bus, the device's session) and quitting would otherwise wait for Redis.
    const started = Date.now()
    await node.close()
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('refuses an unreachable Redis at once, with the address in the message', async () => {
    const server = createServer().listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    const { port } = server.address() as AddressInfo
    await new Promise((resolve) => server.close(resolve))
    await expect(createRedisBackends({ redisUrl: `redis://127.0.0.1:${port}` })).rejects.toThrow(
      `cannot reach Redis at redis://127.0.0.1:${port}`,
    )
  })
})

describe('embedded persistence (LevelDB in the data directory)', () => {
  let dataDir: string
  let starts = 0
  // Unique per start, as aedes' default random id is, and sorting in start order, so the
  // LevelDB queue (ordered by broker id, then counter) hands out oldest first across restarts.
  const instanceId = () => `level-test-${String(++starts).padStart(4, '0')}`

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'plantwatt-broker-level-'))
  })

  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  it("keeps a sleeping device's command through a restart on the same data directory", async () => {
    const dir = join(dataDir, 'restart')
    let node = await startNode(await createLevelPersistence(dir), instanceId())
    await subscribeAndSleep(node, DEVICE)
    await node.broker.bus.publish(down(DEVICE), Buffer.from(command('c-3')), { qos: 1 })

    await node.close()
    node = await startNode(await createLevelPersistence(dir), instanceId())
    await wakeAndReceiveOnce(node, DEVICE, command('c-3'))
  })

  it('refuses to open a data directory that is in use (LevelDB locks it, across processes too)', async () => {
    const dir = join(dataDir, 'locked')
    const first = await createLevelPersistence(dir)
    cleanups.push(() => first.close())
    await expect(createLevelPersistence(dir)).rejects.toThrow(`session store ${dir} is in use by another process`)
  })
})
