import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Broker, createBroker, createLevelPersistence, type LevelPersistence } from '@plantwatt/broker'
import { deriveDevicePassword, deviceTopic } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import mqtt, { type MqttClient } from 'mqtt'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DownlinkOwner, PendingDownlinks, WorkerDownlinks } from '../src/cluster/downlinks.ts'
import type { ToWorker } from '../src/cluster/protocol.ts'

// Issue 16: with `plantwatt up --workers N` a device's session lives on whichever worker accepted
// its connection, and each worker's session store is its own. The owner (the primary) keeps the
// commands pending per device until the device has one (PUBACK) or answers it (`ack`); every
// worker mirrors them. Two real brokers on LevelDB session stores, a real MQTT device; the IPC
// between primary and workers replaced by direct calls (the messages are the same).

const SECRET = 'cluster-downlinks-secret-0123456789'
const logger = pino({ level: 'silent' })
const model = generatePlant({ devices: 10, seed: 4 })
const plant = new PlantIndex(model)
const device = [...plant.devices.values()].find((candidate) => candidate.equipment !== undefined)!
const DOWN = deviceTopic(device.siteId, device.deviceId, 'down')

function command(id: string, value: number): Buffer {
  return Buffer.from(JSON.stringify({ type: 'setpoint', id, name: 'fan_hz', value, issuedAt: 1_800_000_000 }))
}

describe('downlinks across broker workers', () => {
  let dir: string
  const stores: LevelPersistence[] = []
  const brokers: Broker[] = []
  const workers: WorkerDownlinks[] = []
  const ports: number[] = []
  const pending = new PendingDownlinks()
  let owner: DownlinkOwner

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-cluster-downlinks-'))
    const broadcast = (message: ToWorker) => {
      for (const worker of workers) worker.receive(message)
    }
    owner = new DownlinkOwner(pending, broadcast, () => {}, logger)
    for (const slot of [0, 1]) {
      const store = await createLevelPersistence(join(dir, `sessions-${slot}`))
      stores.push(store)
      const broker = await createBroker({
        plant,
        deviceSecret: SECRET,
        logger,
        persistence: store.persistence,
        id: store.brokerId,
        forwardDownlink: (deviceId, _topic, payload) => workers[slot]!.isPending(deviceId, payload),
      })
      brokers.push(broker)
      workers.push(
        new WorkerDownlinks(
          broker,
          (message) => {
            if (message.t === 'delivered') owner.delivered(message.deviceId, message.n)
          },
          logger,
        ),
      )
      ports.push(await broker.listen({ host: '127.0.0.1', port: 0 }))
    }
  })

  afterAll(async () => {
    for (const broker of brokers) await broker.close()
    for (const store of stores) await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** A sleeping NB-IoT device waking on worker `slot`: persistent session, subscribed to its `down` topic. */
  async function wake(slot: number): Promise<{ client: MqttClient; received: string[] }> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[slot]}`, {
      clientId: device.deviceId,
      username: device.deviceId,
      password: deriveDevicePassword(SECRET, device.deviceId),
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 0,
    })
    const received: string[] = []
    client.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()).id))
    await client.subscribeAsync(DOWN, { qos: 1 })
    return { client, received }
  }

  function nextMessage(client: MqttClient): Promise<string> {
    return new Promise((resolve) =>
      client.once('message', (_topic, payload) => resolve(JSON.parse(payload.toString()).id)),
    )
  }

  async function settled(): Promise<void> {
    while (pending.size > 0) await new Promise((resolve) => setImmediate(resolve))
  }

  it('delivers a command queued while the device slept when it wakes on the other worker, and never again', async () => {
    // Its session starts on worker 0, which sends it c1; it falls asleep before acknowledging it,
    // so worker 0's session store keeps c1 for it.
    const first = await wake(0)
    first.client.handleMessage = () => {}
    const offered = nextMessage(first.client)
    owner.command(DOWN, command('c1', 42))
    expect(await offered).toBe('c1')
    await new Promise<void>((resolve) => first.client.end(true, {}, () => resolve()))
    expect(pending.size).toBe(1)

    // It wakes on worker 1, which has no session of it: the command reaches it there.
    const second = await wake(1)
    expect(second.received.length > 0 ? second.received[0] : await nextMessage(second.client)).toBe('c1')
    // Its PUBACK settles the command everywhere.
    await settled()
    await second.client.endAsync()

    // Back on worker 0, its session there restored with c1 still stored: c1, delivered meanwhile,
    // does not come again; the next command does.
    const third = await wake(0)
    const next = nextMessage(third.client)
    owner.command(DOWN, command('c2', 40))
    expect(await next).toBe('c2')
    expect(third.received).toEqual(['c2'])
    await settled()
    await third.client.endAsync()
  })

  it("settles a command by the device's answer on its ack topic, whatever worker took it", async () => {
    const asleep = await wake(1)
    await asleep.client.endAsync()
    owner.command(DOWN, command('c3', 38))
    expect(pending.size).toBe(1)
    // Answered (e.g. applied from an earlier delivery through another worker) before it woke here.
    owner.record({
      seq: 1,
      receivedAtMs: Date.now(),
      topic: deviceTopic(device.siteId, device.deviceId, 'ack'),
      payload: Buffer.from(JSON.stringify({ id: 'c3', status: 'applied', t: 1_800_000_100 })),
    })
    expect(pending.size).toBe(0)
    const awake = await wake(1)
    const next = nextMessage(awake.client)
    owner.command(DOWN, command('c4', 36))
    expect(await next).toBe('c4')
    expect(awake.received).toEqual(['c4'])
    await settled()
    await awake.client.endAsync()
  })
})
