import { internalKey, internalPassword } from '@plantwatt/bus'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type RunningRedis, startRedis } from '../../../test/support/redis-server.ts'
import { createRedisBackends } from '../src/backends.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'

// Issue 12 finding 15 in a cluster (brokers on one real redis-server): the bound on offline
// internal sessions must never take a processor connected to another broker for gone, not even
// at a broker that started after the processor connected (it heard no connect announcement).

const SECRET = 'internal-sessions-cluster-secret'
const DEVICE = '860100000000123'
const UP = `sites/yibin/devices/${DEVICE}/up`
const LIMIT = 20

describe('offline internal sessions in a cluster', () => {
  let redis: RunningRedis
  const closers: (() => Promise<unknown>)[] = []

  async function startNode(): Promise<{ broker: Broker; url: string }> {
    const backends = await createRedisBackends({ redisUrl: redis.url, keyPrefix: 'internal-sessions' })
    const broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
      persistence: backends.persistence,
      mq: backends.mq,
      limits: { maxQueuedPerInternalSession: LIMIT },
    })
    closers.push(
      () => backends.close(),
      () => broker.close(),
    )
    return { broker, url: `mqtt://127.0.0.1:${await broker.listen({ host: '127.0.0.1', port: 0 })}` }
  }
  const connect = async (url: string, options: IClientOptions): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...options })
    closers.push(() => client.endAsync(true))
    return client
  }

  beforeAll(async () => {
    redis = await startRedis()
  })

  afterAll(async () => {
    while (closers.length > 0) await closers.pop()!().catch(() => {})
    await redis.stop()
  })

  it('delivers every reading to a processor on another broker that was there first', async () => {
    const b = await startNode()
    const processor = await connect(b.url, {
      clientId: 'plantwatt-processor-cluster',
      username: 'plantwatt-processor',
      password: internalPassword(internalKey(SECRET), 'processor'),
      clean: false,
    })
    await processor.subscribeAsync('sites/+/devices/+/up', { qos: 1 })
    // Broker C starts after the processor connected to B: it learns of it by asking at start.
    const c = await startNode()
    const received = new Promise<number>((resolve) => {
      let count = 0
      processor.on('message', (_topic, payload) => {
        if (payload.toString() === 'marker') resolve(count)
        else count++
      })
    })
    const device = await connect(c.url, {
      clientId: DEVICE,
      username: DEVICE,
      password: deriveDevicePassword(SECRET, DEVICE),
    })
    const readings = 5 * LIMIT
    for (let i = 0; i < readings; i++) await device.publishAsync(UP, `[{"n":"power","v":${i}}]`, { qos: 1 })
    await device.publishAsync(UP, 'marker', { qos: 1 })
    expect(await received).toBe(readings)
    expect(processor.connected).toBe(true)
    expect(await metricValue(c.broker.metrics.internalSessionsExpired)).toBe(0)
  })
})
