import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { createMqttBus } from '../src/mqtt-bus.ts'

// Issue 12 finding 14: plantwatt never publishes retained messages, so a retained message the
// MQTT bus is handed on subscribe is somebody else's stale one (a device's retained reading would
// be re-ingested by a split-mode processor at every start). The bus ignores them.

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

describe('MQTT bus and retained messages (issue 12 finding 14)', () => {
  it('ignores a retained message delivered on subscribe, and delivers the live ones', async () => {
    const broker = await Aedes.createBroker()
    const server = createServer((socket) => broker.handle(socket))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(
      () => new Promise<void>((resolve) => server.close(() => resolve())),
      () => new Promise<void>((resolve) => broker.close(() => resolve())),
    )
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
    const topic = 'sites/yibin/devices/860100000000123/up'

    const device = await mqtt.connectAsync(url, { clientId: 'device', reconnectPeriod: 0 })
    cleanups.push(() => device.endAsync(true))
    await device.publishAsync(topic, 'stale', { qos: 1, retain: true })

    const bus = await createMqttBus({ url, clientId: `bus-retained-${process.pid}` })
    cleanups.push(() => bus.close())
    const seen: string[] = []
    const live = new Promise<void>((resolve) => {
      void bus.subscribe('sites/+/devices/+/up', (_topic, payload) => {
        seen.push(payload.toString())
        if (payload.toString() === 'live') resolve()
      })
    })
    // Once subscribed (SUBACK), aedes streams the retained message at once; the live one
    // travels through a second connection after that, so it comes second.
    await bus.subscribe('sites/+/devices/+/up', () => {})
    await device.publishAsync(topic, 'live', { qos: 1 })
    await live
    expect(seen).toEqual(['live'])
  })
})
