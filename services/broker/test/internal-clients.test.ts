import { createHmac, hkdfSync } from 'node:crypto'
import { PlantIndex } from '@plantwatt/plant'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// plantwatt's own MQTT clients (docs/broker.md, docs/internal-bus.md) on real sockets: their own
// secret and per-role credentials, their own client-id namespace (host names with dots), no id
// lockout, and least privilege per role. Credentials are computed here from the documented scheme.

const DEVICE_SECRET = 'internal-clients-device-secret'
const INTERNAL_SECRET = 'internal-clients-internal-secret'
const DEVICE = '860100000000123'

/** The documented per-role password: HMAC-SHA256(internal secret, `plantwatt-internal/v2/{role}`), hex. */
function rolePassword(role: string, secret = INTERNAL_SECRET): string {
  return createHmac('sha256', secret).update(`plantwatt-internal/v2/${role}`, 'utf8').digest('hex')
}

/** The SUBACK return code for each filter, subscribed one at a time (0x80 = refused). */
async function grants(client: MqttClient, filters: string[]): Promise<number[]> {
  const codes: number[] = []
  for (const filter of filters) {
    try {
      const [granted] = await client.subscribeAsync(filter, { qos: 1 })
      codes.push(granted!.qos)
    } catch (error) {
      // mqtt.js rejects a SUBACK holding 0x80, with the packet.
      codes.push((error as { packet: { granted: number[] } }).packet.granted[0]!)
    }
  }
  return codes
}

describe('internal clients', () => {
  let broker: Broker
  let port: number
  const open: MqttClient[] = []

  const connect = (role: string, instance: string, overrides: Partial<IClientOptions> = {}) =>
    mqtt
      .connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: `plantwatt-${role}-${instance}`,
        username: `plantwatt-${role}`,
        password: rolePassword(role),
        protocolVersion: 4,
        reconnectPeriod: 0,
        ...overrides,
      })
      .then((client) => {
        open.push(client)
        return client
      })
  const refused = (reason: string) => metricValue(broker.metrics.refusals, { reason })

  beforeAll(async () => {
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: DEVICE_SECRET,
      internalSecret: INTERNAL_SECRET,
      logger: pino({ level: 'silent' }),
      limits: { login: { delayStepMs: 1, maxDelayMs: 5 } },
    })
    port = await broker.listen({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    for (const client of open) await client.endAsync(true)
    await broker.close()
  })

  it('lets the processor in with a client id holding a host name with dots', async () => {
    const processor = await connect('processor', 'ip-10-0-1-23.eu-west-1.compute.internal')
    expect(processor.connected).toBe(true)
  })

  it('refuses the old credential derived from the device secret, and one role posing as another', async () => {
    const old = createHmac('sha256', DEVICE_SECRET).update('plantwatt-internal-client/v1', 'utf8').digest('hex')
    await expect(connect('processor', 'old', { username: 'plantwatt-internal', password: old })).rejects.toMatchObject({
      code: expect.any(Number),
    })
    await expect(connect('processor', 'posing', { password: rolePassword('gateway') })).rejects.toMatchObject({
      code: 4,
    })
    // The gateway's credentials do not open the processor's client id.
    await expect(
      connect('processor', 'posing', { username: 'plantwatt-gateway', password: rolePassword('gateway') }),
    ).rejects.toMatchObject({ code: expect.any(Number) })
  })

  it('never locks an internal client id out, however many strangers guess it', async () => {
    const clientId = 'plantwatt-processor-guessed'
    for (let i = 0; i < 10; i++) {
      const raw = await RawClient.open(port)
      raw.send(connectPacket(clientId, 'plantwatt-processor', `guess-${i}`))
      expect(await raw.next('connack')).toMatchObject({ returnCode: 4 })
      raw.destroy()
    }
    expect(await refused('locked_out')).toBe(0)
    const processor = await connect('processor', 'guessed')
    expect(processor.connected).toBe(true)
  })

  it('gives the processor what it needs: device uplinks and acks, downlinks, figures to the gateway', async () => {
    const processor = await connect('processor', 'acl')
    expect(
      await grants(processor, [
        'sites/+/devices/+/up',
        'sites/+/devices/+/ack',
        'plantwatt/v1/live-sync',
        'plantwatt/v1/query',
      ]),
    ).toEqual([1, 1, 1, 1])
    // Not the figures it sends the gateway, not device commands, not everything: 0x80.
    expect(await grants(processor, ['#', 'plantwatt/v1/live/+', 'sites/yibin/devices/+/down'])).toEqual([128, 128, 128])
    await processor.publishAsync(`sites/yibin/devices/${DEVICE}/down`, '{"id":"c1"}', { qos: 1 })
    await processor.publishAsync('plantwatt/v1/live/yibin', '{}', { qos: 1 })
    expect(processor.connected).toBe(true)
  })

  it('gives the gateway only the gateway side of the internal bus', async () => {
    const gateway = await connect('gateway', 'acl')
    expect(
      await grants(gateway, [
        'plantwatt/v1/live/+',
        'plantwatt/v1/buckets/+',
        'plantwatt/v1/alerts',
        'plantwatt/v1/query-reply/abc',
      ]),
    ).toEqual([1, 1, 1, 1])
    expect(await grants(gateway, ['sites/+/devices/+/up', 'plantwatt/v1/query', '#'])).toEqual([128, 128, 128])
    await gateway.publishAsync('plantwatt/v1/alerts-sync', '{"after":0}', { qos: 1 })
    // A command to a device is the processor's to send: the gateway is disconnected for it.
    const closed = new Promise<void>((resolve) => gateway.once('close', () => resolve()))
    gateway.publish(`sites/yibin/devices/${DEVICE}/down`, '{"id":"c2"}', { qos: 1 })
    await closed
    expect(await metricValue(broker.metrics.disconnects, { reason: 'foreign_publish' })).toBe(1)
  })

  it('without PLANTWATT_INTERNAL_SECRET derives the key from the device secret by HKDF, never the old way', async () => {
    const derived = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: DEVICE_SECRET,
      logger: pino({ level: 'silent' }),
    })
    try {
      const derivedPort = await derived.listen({ host: '127.0.0.1', port: 0 })
      const key = Buffer.from(
        hkdfSync('sha256', DEVICE_SECRET, 'plantwatt', 'plantwatt internal-client key v2', 32),
      ).toString('hex')
      const gateway = await mqtt.connectAsync(`mqtt://127.0.0.1:${derivedPort}`, {
        clientId: 'plantwatt-gateway-host.example',
        username: 'plantwatt-gateway',
        password: rolePassword('gateway', key),
        protocolVersion: 4,
        reconnectPeriod: 0,
      })
      expect(gateway.connected).toBe(true)
      await gateway.endAsync()
      // The explicit internal secret of the other broker is no key here.
      await expect(
        mqtt.connectAsync(`mqtt://127.0.0.1:${derivedPort}`, {
          clientId: 'plantwatt-gateway-other',
          username: 'plantwatt-gateway',
          password: rolePassword('gateway'),
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
      ).rejects.toMatchObject({ code: 4 })
    } finally {
      await derived.close()
    }
  })
})
