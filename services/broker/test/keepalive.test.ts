import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'
import { connectPacket, RawClient } from './raw-client.ts'

// Issue 12 finding 9, CONTRACT.md §4 (v1.1): every keep-alive MQTT 3.1.1 allows (0 to 65,535 s)
// is accepted, a keep-alive-0 connection silent for the broker's idle limit is closed, and no
// CONNACK carries a return code 3.1.1 reserves (6 and above).

const SECRET = 'keepalive-test-secret'
const DEVICE = '860100000000123'
const IDLE_LIMIT_MS = 400

describe('broker keep-alive (issue 12 finding 9)', () => {
  let broker: Broker
  let port: number

  beforeAll(async () => {
    // A spread, so that the option is passed through whatever the limits type says.
    const idle = { idleLimitMs: IDLE_LIMIT_MS }
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
      limits: { packetTimeoutMs: 1000, ...idle },
    })
    port = await broker.listen({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await broker.close()
  })

  const connectWith = async (keepalive: number) => {
    const raw = await RawClient.open(port)
    raw.send(connectPacket(DEVICE, DEVICE, deriveDevicePassword(SECRET, DEVICE), { keepalive }))
    await Promise.race([raw.next('connack'), raw.whenClosed()])
    return raw
  }

  it('accepts every legal keep-alive, 0 and 65,535 included, with CONNACK 0', async () => {
    for (const keepalive of [0, 1, 7200, 7201, 65_535]) {
      const raw = await connectWith(keepalive)
      const connack = raw.packets.find((packet) => packet.cmd === 'connack')
      expect({ keepalive, returnCode: connack?.returnCode }).toEqual({ keepalive, returnCode: 0 })
      raw.destroy()
      await raw.whenClosed()
    }
  })

  it('never answers a return code that MQTT 3.1.1 reserves', async () => {
    const codes: number[] = []
    for (const keepalive of [0, 65_535]) {
      for (const password of [deriveDevicePassword(SECRET, DEVICE), 'wrong']) {
        const raw = await RawClient.open(port)
        raw.send(connectPacket(DEVICE, DEVICE, password, { keepalive }))
        await Promise.race([raw.next('connack'), raw.whenClosed()])
        for (const packet of raw.packets) if (packet.cmd === 'connack') codes.push(packet.returnCode ?? -1)
        raw.destroy()
        await raw.whenClosed()
      }
    }
    expect(codes).toHaveLength(4)
    for (const code of codes) expect(code).toBeLessThanOrEqual(5)
  })

  it('closes a keep-alive-0 connection silent for the idle limit, and counts it', async () => {
    const before = await metricValue(broker.metrics.disconnects, { reason: 'idle' })
    const raw = await connectWith(0)
    expect(raw.packets.find((packet) => packet.cmd === 'connack')?.returnCode).toBe(0)
    const connectedAt = Date.now()
    await raw.whenClosed()
    const silentMs = Date.now() - connectedAt
    expect(silentMs).toBeGreaterThanOrEqual(IDLE_LIMIT_MS - 50)
    expect(silentMs).toBeLessThan(IDLE_LIMIT_MS + 3000)
    expect(await metricValue(broker.metrics.disconnects, { reason: 'idle' })).toBe(before + 1)
  })

  it('keeps a keep-alive-0 connection that is not silent', async () => {
    const raw = await connectWith(0)
    // Three idle limits of PINGREQs every quarter limit: each one is an answer, not a close.
    for (let i = 0; i < 12; i++) {
      const pong = new Promise<void>((resolve) => raw.socket.once('data', () => resolve()))
      raw.send({ cmd: 'pingreq' })
      await Promise.race([pong, raw.whenClosed()])
      if (raw.closed) break
      await new Promise((resolve) => setTimeout(resolve, IDLE_LIMIT_MS / 4))
    }
    expect(raw.closed).toBe(false)
    raw.destroy()
  })

  it('closes a connection silent for one and a half times its keep-alive, and counts it', async () => {
    const before = await metricValue(broker.metrics.disconnects, { reason: 'keepalive_timeout' })
    const raw = await connectWith(1)
    expect(raw.packets.find((packet) => packet.cmd === 'connack')?.returnCode).toBe(0)
    const connectedAt = Date.now()
    await raw.whenClosed()
    const silentMs = Date.now() - connectedAt
    // MQTT-3.1.2-24: 1.5 × 1 s, and then at most one sweep of the broker's later.
    expect(silentMs).toBeGreaterThanOrEqual(1500 - 50)
    expect(silentMs).toBeLessThan(1500 + 3000)
    expect(await metricValue(broker.metrics.disconnects, { reason: 'keepalive_timeout' })).toBe(before + 1)
  })

  it('keeps a connection whose only packets are uplinks on the fast path', async () => {
    const raw = await connectWith(1)
    const up = 'sites/yibin/devices/860100000000123/up'
    // Four keep-alive periods of QoS 1 uplinks every 400 ms, each acknowledged: none is a close.
    for (let id = 1; id <= 10 && !raw.closed; id++) {
      raw.send({ cmd: 'publish', qos: 1, dup: false, retain: false, topic: up, payload: '[]', messageId: id })
      await new Promise<void>((resolve) => {
        const check = () =>
          raw.closed || raw.packets.some((packet) => packet.cmd === 'puback' && packet.messageId === id)
            ? resolve()
            : setImmediate(check)
        check()
      })
      await new Promise((resolve) => setTimeout(resolve, 400))
    }
    expect(raw.closed).toBe(false)
    raw.destroy()
  })
})
