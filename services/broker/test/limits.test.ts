import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// The limits of CONTRACT.md §4 and issue #3 on real sockets: each offender is refused or dropped
// and counted, and the broker goes on serving the well-behaved devices.

const SECRET = 'limits-test-secret'
const A = '860100000000123'
const B = '860100000000124'
const C = '860100000000223'
const MAX_PACKET = 64 * 1024
const closeOf = (client: MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()))

describe('broker limits', () => {
  let broker: Broker
  let port: number
  let clockOffsetMs = 0

  const connect = (clientId: string, overrides: Partial<IClientOptions> = {}) =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId,
      username: clientId,
      password: deriveDevicePassword(SECRET, clientId),
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...overrides,
    })
  const dropped = (reason: string) => metricValue(broker.metrics.disconnects, { reason })
  const refused = (reason: string) => metricValue(broker.metrics.refusals, { reason })

  /** The broker still serves a good device end to end: connect, publish, reading on the bus. */
  async function stillServes(deviceId = C): Promise<void> {
    const seen = new Promise<void>((resolve) => {
      void broker.bus.subscribe(`sites/yibin/devices/${deviceId}/up`, () => resolve())
    })
    const device = await connect(deviceId)
    await device.publishAsync(`sites/yibin/devices/${deviceId}/up`, '[{"n":"power","v":1}]', { qos: 1 })
    await seen
    await device.endAsync()
  }

  beforeAll(async () => {
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
      now: () => Date.now() + clockOffsetMs,
      limits: {
        maxPacketBytes: MAX_PACKET,
        packetTimeoutMs: 1000,
        drainTimeoutMs: 1000,
        publishRatePerS: 10,
        publishBurst: 100,
        subscribeRatePerS: 5,
        subscribeBurst: 20,
        login: {
          maxFailures: 5,
          windowMs: 60_000,
          lockoutMs: 60_000,
          delayStepMs: 20,
          maxDelayMs: 200,
          maxEntries: 1000,
        },
      },
    })
    port = await broker.listen({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await broker.close()
  })

  it('drops a connection that sends bytes that are not MQTT, and counts it', async () => {
    const before = await dropped('protocol_error')
    const raw = await RawClient.open(port)
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await raw.whenClosed()
    expect(await dropped('protocol_error')).toBe(before + 1)
    await stillServes()
  })

  it('drops a client as soon as a packet header announces more than the limit, having read little of it', async () => {
    const bytesBefore = await metricValue(broker.metrics.bytesIn)
    const raw = await RawClient.open(port)
    raw.send(connectPacket(A, A, deriveDevicePassword(SECRET, A)))
    await raw.next('connack')
    // A PUBLISH announcing 200 MB, then as much of its body as the socket takes.
    raw.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x64]))
    const chunk = Buffer.alloc(64 * 1024, 0x41)
    for (let sent = 0; sent < 16 * 1024 * 1024 && !raw.closed && raw.write(chunk); sent += chunk.length) {}
    await raw.whenClosed()
    expect(await dropped('packet_too_large')).toBe(1)
    // What the broker read of the offender stays within about twice the packet limit.
    expect((await metricValue(broker.metrics.bytesIn)) - bytesBefore).toBeLessThan(2 * MAX_PACKET + 64 * 1024)
    await stillServes()
  })

  it('drops a client whose packet trickles in slower than the packet timeout', async () => {
    const raw = await RawClient.open(port)
    raw.send(connectPacket(A, A, deriveDevicePassword(SECRET, A)))
    await raw.next('connack')
    raw.write(Buffer.from([0x30, 0xe8, 0x07])) // a PUBLISH of 1000 bytes, begun
    const trickle = setInterval(() => raw.write(Buffer.from([0x41])), 100)
    const started = Date.now()
    await raw.whenClosed()
    clearInterval(trickle)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(await dropped('incomplete_packet')).toBe(1)
    await stillServes()
  })

  it('refuses an empty client id, and an over-long one, with CONNACK 2', async () => {
    for (const clientId of ['', 'x'.repeat(1000)]) {
      const raw = await RawClient.open(port)
      raw.send(connectPacket(clientId, 'anyone', 'anything'))
      expect(await raw.next('connack')).toMatchObject({ returnCode: 2 })
      raw.destroy()
    }
    expect(await refused('empty_client_id')).toBe(1)
    expect(await refused('bad_client_id')).toBe(1)
  })

  it('refuses an MQTT 5 client clearly: aedes speaks MQTT 3.1.1', async () => {
    await expect(connect(A, { protocolVersion: 5 })).rejects.toThrow(/protocol/i)
    await stillServes()
  })

  it('closes a publish to a topic deeper than 8 levels or with U+0000', async () => {
    for (const topic of ['a/b/c/d/e/f/g/h/i', `sites/yibin/devices/${A}\u0000/up`]) {
      const device = await connect(A)
      const closed = closeOf(device)
      device.publish(topic, 'x', { qos: 1 })
      await closed
      await device.endAsync(true)
    }
    await stillServes()
  })

  it('drops a device that floods subscriptions, after answering 0x80 to foreign filters', async () => {
    const device = await connect(A)
    const closed = closeOf(device)
    for (let i = 0; i < 100 && device.connected; i++) device.subscribe(`sites/yibin/devices/${B}/down`, () => {})
    await closed
    expect(await dropped('subscribe_flood')).toBe(1)
    expect(await metricValue(broker.metrics.foreignSubscriptions)).toBeGreaterThan(0)
    await device.endAsync(true)
    await stillServes()
  })

  it('drops a frozen subscriber within the drain timeout without stalling other devices', async () => {
    const frozen = await RawClient.open(port)
    frozen.send(connectPacket(A, A, deriveDevicePassword(SECRET, A)))
    await frozen.next('connack')
    frozen.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `sites/yibin/devices/${A}/down`, qos: 0 }] })
    await frozen.next('suback')
    frozen.socket.pause() // it stops reading: the broker's writes back up

    const other: MqttClient = await connect(B)
    await other.subscribeAsync(`sites/yibin/devices/${B}/down`, { qos: 0 })
    const droppedSlow = new Promise<void>((resolve) =>
      broker.events.on('dropped', (reason: string) => reason === 'slow_consumer' && resolve()),
    )
    const big = Buffer.alloc(256 * 1024, 0x42)
    const floods = Array.from({ length: 64 }, () => broker.bus.publish(`sites/yibin/devices/${A}/down`, big))
    const received = new Promise<number>((resolve) => other.once('message', () => resolve(Date.now())))
    const sentAt = Date.now()
    await broker.bus.publish(`sites/yibin/devices/${B}/down`, Buffer.from('for B'))
    const receivedAt = await received
    // B waits at most about one drain timeout, not aedes' default minute.
    expect(receivedAt - sentAt).toBeLessThan(3000)
    await droppedSlow
    // The broker dropped it; reading again, the client sees the end of what was queued, then EOF.
    frozen.socket.resume()
    await frozen.whenClosed()
    await Promise.all(floods)
    expect(await dropped('slow_consumer')).toBeGreaterThanOrEqual(1)
    await other.endAsync()
  })

  it('locks a device id out after 5 failed logins for 60 s, slows the address, and lets other devices in', async () => {
    const wrong = () => connect(A, { password: 'guess' })
    for (let i = 0; i < 5; i++) await expect(wrong()).rejects.toMatchObject({ code: 4 })
    // The right password is refused while the id is locked…
    const started = Date.now()
    await expect(connect(A)).rejects.toMatchObject({ code: 5 })
    // …and refusals from this address are now slowed (delayStepMs 20 per recent failure, at most 200).
    expect(Date.now() - started).toBeGreaterThanOrEqual(100)
    expect(await refused('locked_out')).toBe(1)
    // Another device from the same address still gets in.
    await stillServes(C)
    // After the lockout the right password works again.
    clockOffsetMs += 61_000
    const device = await connect(A)
    expect(device.connected).toBe(true)
    await device.endAsync()
  })
})
