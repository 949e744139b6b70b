import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import mqtt, { type IClientOptions } from 'mqtt'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'

// CONTRACT.md §4 through real sockets: aedes on port 0, mqtt.js clients as devices.

const SECRET = 'broker-test-secret'
const DEVICE = '860100000000123'
const OTHER = '860100000000223'

describe('broker: device authentication and authority', () => {
  let broker: Broker
  let url: string

  const connect = (clientId: string, overrides: Partial<IClientOptions> = {}) =>
    mqtt.connectAsync(url, {
      clientId,
      username: clientId,
      password: deriveDevicePassword(SECRET, clientId),
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...overrides,
    })

  beforeAll(async () => {
    broker = await createBroker({
      plant: new PlantIndex(examplePlant()),
      deviceSecret: SECRET,
      logger: pino({ level: 'silent' }),
    })
    url = `mqtt://127.0.0.1:${await broker.listen({ host: '127.0.0.1', port: 0 })}`
  })

  afterAll(async () => {
    await broker.close()
  })

  it('accepts a device with its derived password, on a clean or a persistent session', async () => {
    for (const clean of [true, false]) {
      const device = await connect(DEVICE, { clean })
      expect(device.connected).toBe(true)
      await device.endAsync()
    }
  })

  it('refuses a wrong password with CONNACK 4 and an unknown device with CONNACK 5, and counts both', async () => {
    const refusals = (reason: string) => metricValue(broker.metrics.refusals, { reason })
    const before = { bad: await refusals('bad_password'), unknown: await refusals('unknown_device') }
    await expect(connect(DEVICE, { password: 'guess' })).rejects.toMatchObject({ code: 4 })
    await expect(connect('999999999999999')).rejects.toMatchObject({ code: 5 })
    await expect(connect(DEVICE, { username: OTHER })).rejects.toMatchObject({ code: 4 })
    expect(await refusals('bad_password')).toBe(before.bad + 1)
    expect(await refusals('unknown_device')).toBe(before.unknown + 1)
    expect(await refusals('bad_username')).toBe(1)
  })

  it("delivers a device's reading on the bus, under its own topic", async () => {
    const received = new Promise<[string, string]>((resolve) => {
      broker.bus.subscribe('sites/+/devices/+/up', (topic, payload) => resolve([topic, payload.toString()]))
    })
    const device = await connect(DEVICE)
    await device.publishAsync(`sites/yibin/devices/${DEVICE}/up`, '[{"n":"power","v":1}]', { qos: 1 })
    expect(await received).toEqual([`sites/yibin/devices/${DEVICE}/up`, '[{"n":"power","v":1}]'])
    await device.endAsync()
  })

  it("closes the connection on a publish to another device's topic, or its own down topic", async () => {
    for (const topic of [
      `sites/yibin/devices/${OTHER}/up`,
      `sites/yibin/devices/${DEVICE}/down`,
      'plantwatt/v1/live/yibin',
    ]) {
      const before = await metricValue(broker.metrics.disconnects, { reason: 'foreign_publish' })
      const device = await connect(DEVICE)
      const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
      device.publish(topic, 'x', { qos: 1 })
      await closed
      expect(await metricValue(broker.metrics.disconnects, { reason: 'foreign_publish' })).toBe(before + 1)
      await device.endAsync(true)
    }
  })

  it('answers 0x80 to a foreign subscription and keeps the connection open', async () => {
    const device = await connect(DEVICE)
    // mqtt.js rejects a SUBACK holding 0x80 and carries the packet on the error.
    const refusal = await device
      .subscribeAsync(
        [`sites/yibin/devices/${DEVICE}/down`, `sites/yibin/devices/${OTHER}/down`, 'sites/+/devices/+/down', '#'],
        { qos: 1 },
      )
      .catch((error: { packet?: { granted: number[] } }) => error)
    expect((refusal as { packet?: { granted: number[] } }).packet?.granted).toEqual([1, 128, 128, 128])
    expect(device.connected).toBe(true)
    // Still connected: a downlink published by plantwatt reaches it.
    const message = new Promise<string>((resolve) =>
      device.once('message', (_topic, payload) => resolve(payload.toString())),
    )
    await broker.bus.publish(`sites/yibin/devices/${DEVICE}/down`, Buffer.from('{"type":"setpoint"}'), { qos: 1 })
    expect(await message).toBe('{"type":"setpoint"}')
    await device.endAsync()
    // CONNACKs, SUBACKs and the command went out, and were counted.
    expect(await metricValue(broker.metrics.bytesOut)).toBeGreaterThan(20)
    expect(await metricValue(broker.metrics.messagesOut)).toBe(1)
  })
})
