// `simulate` and `replay` (the functions behind `plantwatt simulate` / `plantwatt replay`) against
// the real plantwatt broker on port 0: a recording replayed at two speeds delivers exactly the
// recorded messages in the same per-device order, and a live simulation answers a setpoint command.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  deviceTopic,
  encodeSetpointCommand,
  type PlantModel,
  parseDeviceTopic,
  parseSetpointAck,
} from '@plantwatt/contract'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// The broker is a service and the fleet a simulator: neither may depend on the other, so this
// test reaches the real broker by path, as the repository's end-to-end tests reach packages.
import { PlantIndex } from '../../../packages/plant/src/index.ts'
import { type Broker, createBroker } from '../../../services/broker/src/broker.ts'
import { deviceRolesOf, generatePlant } from '../src/plant-generator.ts'
import { openRecording } from '../src/recording/index.ts'
import { FAULT_PRESETS, replay, simulate } from '../src/run/index.ts'

const SECRET = 'fleet-simulate-test-secret'
const HOST = '127.0.0.1'
// Tuesday 02:00 UTC = 10:00 in Yibin: the plant is producing.
const START_S = Date.UTC(2025, 2, 4, 2, 0) / 1000
const RECORDED_S = 60

type Logger = Parameters<typeof createBroker>[0]['logger']
const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} } as Record<string, unknown>
silent.child = () => silent
const logger = silent as unknown as Logger

/** device → its messages as the broker delivered them, `kind payload` each, in arrival order. */
type Delivered = Map<string, string[]>

function append(into: Delivered, deviceId: string, line: string): void {
  let list = into.get(deviceId)
  if (!list) {
    list = []
    into.set(deviceId, list)
  }
  list.push(line)
}

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return predicate()
}

describe('simulate and replay through the plantwatt broker', () => {
  let plant: PlantModel
  let broker: Broker
  let port: number
  let dir: string
  /** What the broker delivered since the last reset, per device. */
  let delivered: Delivered = new Map()
  let deliveredCount = 0
  const acks: { deviceId: string; id: string; status: string }[] = []

  beforeAll(async () => {
    plant = generatePlant({ devices: 60, seed: 5 })
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-simulate-'))
    broker = await createBroker({ plant: new PlantIndex(plant), deviceSecret: SECRET, logger })
    await broker.bus.subscribe('sites/+/devices/+/+', (topic, payload) => {
      const parsed = parseDeviceTopic(topic)
      if (!parsed || parsed.kind === 'down') return
      append(delivered, parsed.deviceId, `${parsed.kind} ${payload.toString('latin1')}`)
      deliveredCount++
      if (parsed.kind === 'ack') {
        const ack = parseSetpointAck(payload)
        if (ack) acks.push({ deviceId: parsed.deviceId, id: ack.id, status: ack.status })
      }
    })
    port = await broker.listen({ host: HOST, port: 0 })
  })

  afterAll(async () => {
    await broker?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const connection = () => ({ brokers: [{ host: HOST, port }], deviceSecret: SECRET })

  function resetDelivered(): void {
    delivered = new Map()
    deliveredCount = 0
  }

  it('replays a recording at 20× and at full speed, byte for byte, in per-device order', async () => {
    const file = join(dir, 'run.ndjson.gz')
    const recordedRun = await simulate({
      plant,
      seed: 7,
      startS: START_S,
      durationS: RECORDED_S,
      speed: 'max',
      connection: null,
      workers: 2,
      faults: FAULT_PRESETS.nbiot,
      record: file,
    })
    expect(recordedRun.record?.messages).toBeGreaterThan(0)

    const recorded: Delivered = new Map()
    let recordedCount = 0
    let lastT = START_S
    const { messages } = await openRecording(file)
    for await (const message of messages) {
      append(recorded, message.deviceId, `${message.kind} ${message.payload.toString('latin1')}`)
      recordedCount++
      lastT = Math.max(lastT, message.t)
    }
    expect(recordedCount).toBe(recordedRun.record?.messages)
    // Nearly every device sent within the minute (a sleeping one may not have woken yet).
    expect(recorded.size).toBeGreaterThan(0.8 * recordedRun.devices)

    for (const run of [
      { speed: 20 as const, workers: 1 },
      { speed: 'max' as const, workers: 2 },
    ]) {
      resetDelivered()
      const summary = await replay({ file, speed: run.speed, workers: run.workers, connection: connection() })
      expect(summary.messages.unsentAtEnd).toBe(0)
      expect(summary.messages.acknowledged).toBe(recordedCount)
      expect(await until(() => deliveredCount >= recordedCount, 10_000)).toBe(true)
      expect(deliveredCount).toBe(recordedCount)
      expect(delivered).toEqual(recorded)
      if (run.speed === 20) {
        // Paced: simulated time went by no faster than 20× the wall clock.
        expect(summary.wallSeconds).toBeGreaterThanOrEqual((0.9 * (lastT - START_S)) / 20)
      }
    }
  }, 120_000)

  it('runs live devices that take a setpoint command and acknowledge it', async () => {
    resetDelivered()
    const oven = plant.sites[0]!.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment)).find(
      (equipment) => equipment.tuning,
    )!
    const target = deviceRolesOf(oven).process!.device
    const site = plant.sites[0]!.id
    const controller = new AbortController()
    const run = simulate({
      plant,
      seed: 3,
      durationS: 3600,
      speed: 10,
      connection: connection(),
      workers: 2,
      faults: FAULT_PRESETS.none,
      signal: controller.signal,
    })
    // The device is connected (and subscribed to its down topic) once it has published.
    expect(await until(() => (delivered.get(target)?.length ?? 0) > 0, 30_000)).toBe(true)
    const command = {
      type: 'setpoint' as const,
      id: 'cmd-simulate-test',
      name: oven.tuning!.setpoint,
      value: 41.5,
      issuedAt: START_S,
    }
    await broker.bus.publish(deviceTopic(site, target, 'down'), encodeSetpointCommand(command), { qos: 1 })
    expect(await until(() => acks.some((ack) => ack.id === command.id), 30_000)).toBe(true)
    // From the next sample on, the device reports the new setpoint (CONTRACT.md §3).
    const reportsNewValue = new RegExp(`"n":"${oven.tuning!.setpoint}"[^}]*"v":41\\.5[,}]`)
    expect(await until(() => delivered.get(target)!.some((line) => reportsNewValue.test(line)), 30_000)).toBe(true)
    controller.abort()
    const summary = await run

    expect(acks.find((ack) => ack.id === command.id)).toEqual({ deviceId: target, id: command.id, status: 'applied' })
    expect(summary.commands.received).toBeGreaterThanOrEqual(1)
    expect(summary.messages.published).toBeGreaterThan(0)
    expect(summary.messages.acknowledged).toBe(summary.messages.published)
  }, 120_000)
})
