import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword, deviceTopic } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'

// Issue 16: `plantwatt up --workers 2`, a real primary (processor, gateway) and two real broker
// worker processes sharing the MQTT port. Devices are spread over both workers by the connections
// they open; every reading they were acknowledged is accounted once, also across a worker killed
// with SIGKILL (restarted by the primary; its journal replayed); a device's reading through one
// worker and its ack through the other both count.

const SECRET = 'e2e-cluster-secret-0123456789abcdef'
const ADMIN = 'e2e-cluster-admin-0123456789'
const model = generatePlant({ devices: 40, seed: 16 })
const plant = new PlantIndex(model)
// Devices of equipment (power readings within their rating), not meters.
const devices = [...plant.devices.values()].filter((device) => device.equipment !== undefined)

function connect(port: number, deviceId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: deviceId,
    username: deviceId,
    password: deriveDevicePassword(SECRET, deviceId),
    protocolVersion: 4,
    reconnectPeriod: 0,
    ...options,
  })
}

function upTopic(deviceId: string): string {
  return deviceTopic(plant.device(deviceId)!.siteId, deviceId, 'up')
}

/** One power reading at event time `t` (s): distinct times, so each is accepted once. */
function reading(t: number): string {
  return JSON.stringify([{ n: 'power', u: 'W', v: 100, t }])
}

async function metricsText(system: RunningPlantwatt): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)
  return response.text()
}

function metricValue(text: string, pattern: RegExp): number {
  const match = pattern.exec(text)
  return match ? Number(match[1]) : 0
}

async function accepted(system: RunningPlantwatt, deviceId: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/devices/${deviceId}`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  })
  return ((await response.json()) as { accepted: number }).accepted
}

/** Polls until `condition` holds (the processor applies forwarded batches within milliseconds). */
async function until(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('plantwatt up --workers 2', () => {
  let system: RunningPlantwatt
  const baseS = Math.floor(Date.now() / 1000) - 1200

  beforeAll(async () => {
    const plantFile = join(tmpdir(), `plantwatt-e2e-cluster-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(model))
    system = await startPlantwatt(['--plant', plantFile, '--workers', '2'], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
    })
  }, 120_000)

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
  }, 60_000)

  it('is ready once both workers listen, on one MQTT port', async () => {
    // Each worker logs on its own stdout: its line may reach the pipe after the primary's.
    const workerLines = (logs: Record<string, unknown>[]) => logs.filter((record) => record.msg === 'worker listening')
    await system.waitForLogs((logs) => new Set(workerLines(logs).map((record) => record.worker)).size === 2, 10_000)
    const workers = workerLines(system.logs)
    expect(new Set(workers.map((record) => record.worker))).toEqual(new Set([0, 1]))
    expect(new Set(workers.map((record) => record.mqttPort))).toEqual(new Set([system.mqttPort]))
    const response = await fetch(`http://127.0.0.1:${system.httpPort}/readyz`)
    expect(response.status).toBe(200)
  })

  it('spreads device sessions over both workers and accounts every acknowledged reading once', async () => {
    const group = devices.slice(0, 10)
    const clients = await Promise.all(group.map((device) => connect(system.mqttPort, device.deviceId)))
    // A CONNACK can reach the client a moment before its worker counts the session: read the
    // counts again until they hold every session (or the deadline, and the assertions say what).
    const connectedCounts = async () => {
      const text = await metricsText(system)
      const on0 = metricValue(text, /plantwatt_up_worker_connected_clients\{worker="0"\} (\d+)/)
      const on1 = metricValue(text, /plantwatt_up_worker_connected_clients\{worker="1"\} (\d+)/)
      return { text, on0, on1 }
    }
    let counts = await connectedCounts()
    for (const deadline = Date.now() + 10_000; counts.on0 + counts.on1 < group.length && Date.now() < deadline; ) {
      counts = await connectedCounts()
    }
    const { text, on0, on1 } = counts
    expect(on0).toBeGreaterThan(0)
    expect(on1).toBeGreaterThan(0)
    expect(on0 + on1).toBe(group.length)
    expect(metricValue(text, /^plantwatt_broker_connected_clients (\d+)/m)).toBe(group.length)
    await Promise.all(
      clients.map(async (client, k) => {
        for (let i = 0; i < 20; i++)
          await client.publishAsync(upTopic(group[k]!.deviceId), reading(baseS + i), { qos: 1 })
      }),
    )
    await until(async () => (await Promise.all(group.map((d) => accepted(system, d.deviceId)))).every((n) => n === 20))
    await Promise.all(clients.map((client) => client.endAsync()))
  }, 60_000)

  it('restarts a SIGKILLed worker and loses no acknowledged reading (its journal replayed)', async () => {
    const group = devices.slice(10, 20)
    const victim = system.logs.findLast((record) => record.msg === 'worker listening' && record.worker === 0)!
    const clients = await Promise.all(
      group.map((device) => connect(system.mqttPort, device.deviceId, { reconnectPeriod: 200, clean: false })),
    )
    const acked = group.map(() => 0)
    const sending = Promise.all(
      clients.map(async (client, k) => {
        for (let i = 0; i < 40; i++) {
          // mqtt.js keeps an unacknowledged QoS 1 publish and sends it again after reconnecting.
          await client.publishAsync(upTopic(group[k]!.deviceId), reading(baseS + 100 + i), { qos: 1 })
          acked[k]!++
        }
      }),
    )
    await until(async () => acked.every((n) => n >= 10))
    process.kill(victim.pid as number, 'SIGKILL')
    await until(async () =>
      system.logs.some(
        (record) => record.msg === 'worker listening' && record.worker === 0 && record.pid !== victim.pid,
      ),
    )
    await sending
    expect(acked.every((n) => n === 40)).toBe(true)
    await until(async () => (await Promise.all(group.map((d) => accepted(system, d.deviceId)))).every((n) => n === 40))
    const text = await metricsText(system)
    expect(metricValue(text, /^plantwatt_up_worker_restarts_total (\d+)/m)).toBe(1)
    await Promise.all(clients.map((client) => client.endAsync()))
  }, 90_000)

  it("counts a device's reading through one worker and its ack through the other", async () => {
    const deviceId = devices[25]!.deviceId
    const workerHolding = async () => {
      const text = await metricsText(system)
      return metricValue(text, /plantwatt_up_worker_connected_clients\{worker="0"\} (\d+)/) === 1 ? 0 : 1
    }
    const acksBefore = async () => {
      const text = await metricsText(system)
      return (
        metricValue(text, /^plantwatt_setpoint_acks_total (\d+)/m) +
        metricValue(text, /^plantwatt_setpoint_acks_rejected_total (\d+)/m)
      )
    }
    const before = await acksBefore()
    let client = await connect(system.mqttPort, deviceId)
    const first = await workerHolding()
    await client.publishAsync(upTopic(deviceId), reading(baseS + 500), { qos: 1 })
    await client.endAsync()
    // Connections are handed out round-robin: reconnect until the other worker holds the session.
    let second = first
    for (let attempt = 0; attempt < 8 && second === first; attempt++) {
      client = await connect(system.mqttPort, deviceId)
      second = await workerHolding()
      if (second === first) await client.endAsync()
    }
    expect(second).not.toBe(first)
    const ack = JSON.stringify({ id: 'no-such-command', status: 'applied', t: baseS + 501 })
    await client.publishAsync(deviceTopic(plant.device(deviceId)!.siteId, deviceId, 'ack'), ack, { qos: 1 })
    await client.endAsync()
    await until(async () => (await accepted(system, deviceId)) === 1 && (await acksBefore()) === before + 1)
  }, 60_000)
})
