import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ALERTS_TOPIC, CARBON_TOPIC } from '@plantwatt/bus'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { startRedis } from '../../../test/support/redis-server.ts'
import { createLevelPersistence, createRedisBackends } from '../src/backends.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// Issue 12 finding 1: an MQTT will must obey the device rules like any publish (CONTRACT.md §4).
// A will is checked at CONNECT (only the device's own `up`/`ack`, never retained), and the wills
// a broker left behind when it stopped uncleanly — published later by aedes with no client — are
// held to the same rules: nothing reaches plantwatt's internal topics or another device.

const SECRET = 'wills-test-secret'
const A = '860100000000123'
const B = '860100000000124'
const C = '860100000000223'
const D = '860100000000001'
const up = (id: string) => `sites/yibin/devices/${id}/up`
const down = (id: string) => `sites/yibin/devices/${id}/down`
const UNPATCHED = new URL('./support/unpatched-broker.mjs', import.meta.url).pathname

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

function willConnect(clientId: string, will: { topic: string; payload: string; retain: boolean }) {
  return connectPacket(clientId, clientId, deriveDevicePassword(SECRET, clientId), {
    will: { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: will.retain },
  })
}

/** Uplinks the broker made durable, as `plantwatt up`'s ingest journal would (the processor reads them there). */
const journaled: string[] = []
const uplinkJournal = {
  append(topic: string, payload: Buffer, done: (error: Error | null) => void) {
    journaled.push(`${topic} ${payload.toString()}`)
    done(null)
  },
}

async function startBroker(
  options: { persistence?: unknown; mq?: unknown; id?: string; heartbeatIntervalMs?: number } = {},
) {
  const broker = await createBroker({
    plant: new PlantIndex(examplePlant()),
    deviceSecret: SECRET,
    logger: pino({ level: 'silent' }),
    uplinkJournal,
    ...options,
  })
  cleanups.push(() => broker.close())
  return { broker, port: await broker.listen({ host: '127.0.0.1', port: 0 }) }
}

/** Every message on the broker's bus but aedes' own `$SYS` traffic. */
async function recordBus(broker: Broker): Promise<{ topic: string; payload: string }[]> {
  const seen: { topic: string; payload: string }[] = []
  await broker.bus.subscribe('#', (topic, payload) => {
    if (!topic.startsWith('$SYS/')) seen.push({ topic, payload: payload.toString() })
  })
  return seen
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const WILLS = [
  [A, { topic: up(A), payload: '[{"n":"online","v":0}]', retain: false }],
  [
    B,
    { topic: CARBON_TOPIC, payload: '{"site":"yibin","carbon":{"gridGPerKWh":0},"by":"device-will"}', retain: false },
  ],
  [C, { topic: down(A), payload: '{"type":"setpoint","id":"forged","name":"fan_hz","value":50}', retain: true }],
  [
    D,
    { topic: ALERTS_TOPIC, payload: '{"events":[{"seq":999999999,"alert":{"severity":"critical"}}]}', retain: false },
  ],
] as const

/** Runs the unpatched broker in a child process, gives it the four wills, and SIGKILLs it. */
async function leaveWills(args: string[]): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, [UNPATCHED, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
  const { port } = JSON.parse(line) as { port: number }
  const clients: RawClient[] = []
  for (const [clientId, will] of WILLS) {
    const raw = await RawClient.open(port)
    raw.send(willConnect(clientId, will))
    // aedes stores the will before it answers the CONNECT.
    expect(await raw.next('connack')).toMatchObject({ returnCode: 0 })
    clients.push(raw)
  }
  child.kill('SIGKILL')
  await once(child, 'exit')
  for (const raw of clients) raw.destroy()
}

/** Wills still stored, whichever broker took them. */
async function storedWills(persistence: unknown): Promise<string[]> {
  const store = persistence as { streamWill(brokers: object): AsyncIterable<{ clientId: string }> }
  const ids: string[] = []
  for await (const will of store.streamWill({})) ids.push(will.clientId)
  return ids
}

async function retainedTopics(persistence: unknown): Promise<string[]> {
  const store = persistence as { createRetainedStream(pattern: string): AsyncIterable<{ topic: string }> }
  const topics: string[] = []
  for await (const packet of store.createRetainedStream('#')) topics.push(packet.topic)
  return topics
}

describe('wills (issue 12 finding 1)', () => {
  it("refuses a CONNECT whose will is not on the device's own up or ack topic, with CONNACK 5", async () => {
    const { broker, port } = await startBroker()
    for (const topic of [CARBON_TOPIC, ALERTS_TOPIC, down(B), down(A), up(B)]) {
      const raw = await RawClient.open(port)
      raw.send(willConnect(A, { topic, payload: '{"forged":true}', retain: false }))
      await Promise.race([raw.next('connack'), raw.whenClosed()])
      const connack = raw.packets.find((packet) => packet.cmd === 'connack')
      expect({ topic, returnCode: connack?.returnCode }).toEqual({ topic, returnCode: 5 })
      raw.destroy()
    }
    expect(await metricValue(broker.metrics.refusals, { reason: 'will_not_allowed' })).toBe(5)
  })

  it("accepts a will on the device's own up topic, clears its retain flag, and publishes it on an unclean close", async () => {
    const { broker, port } = await startBroker()
    const seen = await recordBus(broker)
    const raw = await RawClient.open(port)
    raw.send(willConnect(A, { topic: up(A), payload: '[{"n":"online","v":0}]', retain: true }))
    expect(await raw.next('connack')).toMatchObject({ returnCode: 0 })
    raw.destroy()
    await until(() => seen.length > 0, 'the will')
    expect(seen).toEqual([{ topic: up(A), payload: '[{"n":"online","v":0}]' }])
    expect(journaled).toContain(`${up(A)} [{"n":"online","v":0}]`)
    expect(await metricValue(broker.metrics.retainCleared)).toBe(1)
  })

  it('publishes none of the wills an uncleanly stopped broker left behind but those on devices own topics', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-wills-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))

    // The broker before the fix, in a child process, takes four devices' wills and is killed:
    // no clean close, the wills stay on disk under its broker id.
    const old = await createLevelPersistence(dir)
    const oldBrokerId = old.brokerId
    await old.close()
    await leaveWills(['level', dir, oldBrokerId])

    // plantwatt's broker starts on the same store, with a new broker id (as every start does).
    const level = await createLevelPersistence(dir)
    cleanups.push(() => level.close())
    expect(level.brokerId).not.toBe(oldBrokerId)
    const { broker } = await startBroker({
      persistence: level.persistence,
      id: level.brokerId,
      heartbeatIntervalMs: 50,
    })
    const seen = await recordBus(broker)
    // The old broker is silent: its wills are handled after four heartbeats. Wait until every
    // one has been dealt with (published or refused, and gone from the store).
    await until(async () => (await storedWills(level.persistence)).length === 0, 'the old broker’s wills to be handled')
    await until(() => seen.some((message) => message.topic === up(A)), "A's will on its own up topic")
    expect(seen).toEqual([{ topic: up(A), payload: '[{"n":"online","v":0}]' }])
    expect(await retainedTopics(level.persistence)).toEqual([])
    expect(await metricValue(broker.metrics.willsRefused)).toBe(3)
  })

  it('publishes none of the wills a dead broker of a Redis cluster left but those on devices own topics, on the survivor', async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.stop())
    const backends = await createRedisBackends({ redisUrl: redis.url })
    cleanups.push(() => backends.close())
    const { broker } = await startBroker({
      persistence: backends.persistence,
      mq: backends.mq,
      heartbeatIntervalMs: 50,
    })
    const seen = await recordBus(broker)
    // A broker of the cluster from before the fix, on the same Redis, beating at the same pace.
    await leaveWills(['redis', redis.url, `broker-unpatched-${process.pid}`, '50'])
    await until(
      async () => (await storedWills(backends.persistence)).length === 0,
      'the dead broker’s wills to be handled',
    )
    await until(() => seen.some((message) => message.topic === up(A)), "A's will on its own up topic")
    expect(seen).toEqual([{ topic: up(A), payload: '[{"n":"online","v":0}]' }])
    expect(await retainedTopics(backends.persistence)).toEqual([])
    expect(await metricValue(broker.metrics.willsRefused)).toBe(3)
  })
})
