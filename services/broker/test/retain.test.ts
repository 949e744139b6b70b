import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import mqtt, { type MqttClient } from 'mqtt'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { createLevelPersistence, type LevelPersistence } from '../src/backends.ts'
import { type Broker, createBroker } from '../src/broker.ts'
import { metricValue } from './metric-value.ts'

// Issue 12 finding 14: devices may not park retained messages on the broker. A device's retain
// flag is cleared (the reading is delivered, never stored), and retained messages under `sites/#`
// that an older broker stored are purged at start. On the LevelDB store `plantwatt up` uses.

const SECRET = 'retain-test-secret'
const DEVICE = '860100000000123'
const up = (id: string) => `sites/yibin/devices/${id}/up`
const down = (id: string) => `sites/yibin/devices/${id}/down`

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function levelDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'plantwatt-retain-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function retainedUnder(level: LevelPersistence, pattern: string): Promise<string[]> {
  const stream = (
    level.persistence as unknown as { createRetainedStream(pattern: string): AsyncIterable<{ topic: string }> }
  ).createRetainedStream(pattern)
  const topics: string[] = []
  for await (const packet of stream) topics.push(packet.topic)
  return topics
}

async function startBroker(level: LevelPersistence): Promise<{ broker: Broker; url: string }> {
  const broker = await createBroker({
    plant: new PlantIndex(examplePlant()),
    deviceSecret: SECRET,
    logger: pino({ level: 'silent' }),
    persistence: level.persistence,
    id: level.brokerId,
  })
  cleanups.push(() => broker.close())
  const url = `mqtt://127.0.0.1:${await broker.listen({ host: '127.0.0.1', port: 0 })}`
  return { broker, url }
}

async function connectDevice(url: string, clientId = DEVICE): Promise<MqttClient> {
  const device = await mqtt.connectAsync(url, {
    clientId,
    username: clientId,
    password: deriveDevicePassword(SECRET, clientId),
    protocolVersion: 4,
    reconnectPeriod: 0,
  })
  cleanups.push(() => device.endAsync(true))
  return device
}

describe('retained messages (issue 12 finding 14)', () => {
  it("delivers a device's retained reading but never stores it, and counts the cleared flag", async () => {
    const level = await createLevelPersistence(await levelDir())
    cleanups.push(() => level.close())
    const { broker, url } = await startBroker(level)
    const onBus = new Promise<string>((resolve) => {
      void broker.bus.subscribe(up(DEVICE), (_topic, payload) => resolve(payload.toString()))
    })
    const device = await connectDevice(url)
    await device.publishAsync(up(DEVICE), '[{"n":"power","v":7}]', { qos: 1, retain: true })
    expect(await onBus).toBe('[{"n":"power","v":7}]')
    expect(device.connected).toBe(true)
    expect(await retainedUnder(level, '#')).toEqual([])
    expect(await metricValue(broker.metrics.retainCleared)).toBe(1)
  })

  it('purges retained messages under sites/# that an older broker stored, at start', async () => {
    const dir = await levelDir()
    // The state an unpatched broker leaves: a forged retained command and a retained reading.
    const old = await createLevelPersistence(dir)
    const aedes = await Aedes.createBroker({ persistence: old.persistence, id: old.brokerId })
    for (const [topic, payload] of [
      [down(DEVICE), '{"type":"setpoint","id":"forged","name":"fan_hz","value":50,"issuedAt":1}'],
      [up(DEVICE), '[{"n":"power","v":999999}]'],
    ] as const) {
      await new Promise<void>((resolve, reject) =>
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: true, dup: false },
          (e) => (e ? reject(e) : resolve()),
        ),
      )
    }
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    expect((await retainedUnder(old, 'sites/#')).sort()).toEqual([down(DEVICE), up(DEVICE)])
    await old.close()

    const level = await createLevelPersistence(dir)
    cleanups.push(() => level.close())
    const { broker, url } = await startBroker(level)
    expect(await retainedUnder(level, 'sites/#')).toEqual([])

    // The device subscribing to its down topic gets the real command only, never the forged one.
    const device = await connectDevice(url)
    const messages: { payload: string; retain: boolean }[] = []
    const real = new Promise<void>((resolve) =>
      device.on('message', (_topic, payload, packet) => {
        messages.push({ payload: payload.toString(), retain: packet.retain })
        if (payload.toString().includes('"real"')) resolve()
      }),
    )
    await device.subscribeAsync(down(DEVICE), { qos: 1 })
    await broker.bus.publish(down(DEVICE), Buffer.from('{"type":"setpoint","id":"real"}'), { qos: 1 })
    await real
    expect(messages).toEqual([{ payload: '{"type":"setpoint","id":"real"}', retain: false }])
  })
})
