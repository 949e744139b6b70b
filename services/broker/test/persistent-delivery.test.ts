import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { internalKey, internalPassword } from '@plantwatt/bus'
import { deriveDevicePassword } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import mqtt from 'mqtt'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { createLevelPersistence } from '../src/backends.ts'
import { createBroker } from '../src/broker.ts'

// A split-mode processor holds a persistent session on the broker's session store (LevelDB in
// the data directory). Every reading a device was acknowledged for must reach it while it is
// connected: the store answers asynchronously, so messages can reach aedes' emitter out of the
// order their broker counters were taken in, and aedes' per-client dedupe dropped the overtaken
// ones (1 to 7 of 300 in most runs before the fix).

const SECRET = 'persistent-delivery-secret-of-32-chars'
const DEVICE = '860100000000123'
const UP = `sites/yibin/devices/${DEVICE}/up`
const PROCESSOR = 'plantwatt-processor-persistent-delivery'
const READINGS = 300
const ROUNDS = 8

async function oneRound(): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'plantwatt-persistent-delivery-'))
  const store = await createLevelPersistence(dir)
  const broker = await createBroker({
    plant: new PlantIndex(examplePlant()),
    deviceSecret: SECRET,
    logger: pino({ level: 'silent' }),
    persistence: store.persistence,
    id: store.brokerId,
    limits: { publishRatePerS: 10_000, publishBurst: 10_000 },
  })
  try {
    const url = `mqtt://127.0.0.1:${await broker.listen({ host: '127.0.0.1', port: 0 })}`
    const processor = await mqtt.connectAsync(url, {
      clientId: PROCESSOR,
      username: 'plantwatt-processor',
      password: internalPassword(internalKey(SECRET), 'processor'),
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 0,
    })
    await processor.subscribeAsync('sites/+/devices/+/up', { qos: 1 })
    const received = new Set<number>()
    let marker = false
    processor.on('message', (_topic, payload) => {
      const text = payload.toString()
      if (text === 'marker') marker = true
      else received.add((JSON.parse(text) as [{ v: number }])[0].v)
    })
    const device = await mqtt.connectAsync(url, {
      clientId: DEVICE,
      username: DEVICE,
      password: deriveDevicePassword(SECRET, DEVICE),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    for (let i = 0; i < READINGS; i++) await device.publishAsync(UP, `[{"n":"power","v":${i}}]`, { qos: 1 })
    await device.publishAsync(UP, 'marker', { qos: 1 })
    // Every message was acknowledged to the device; wait (bounded) until the marker and every
    // reading have arrived, or the broker has plainly stopped sending.
    const deadline = Date.now() + 10_000
    while (!(marker && received.size === READINGS) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await device.endAsync()
    await processor.endAsync()
    return Array.from({ length: READINGS }, (_, i) => i).filter((i) => !received.has(i))
  } finally {
    await broker.close()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

describe('QoS 1 delivery to a persistent internal session on the LevelDB store', () => {
  it(`delivers every acknowledged reading to a connected processor (${ROUNDS} rounds of ${READINGS})`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      expect(await oneRound(), `readings never delivered in round ${round}`).toEqual([])
    }
  }, 120_000)
})
