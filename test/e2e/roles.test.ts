import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { deriveDevicePassword, parseSetpointCommand, type SetpointCommand } from '@plantwatt/contract'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startRole } from '../support/plantwatt-process.ts'
import { WsTestClient } from '../support/ws-client.ts'

// Scale-out shape of CONTRACT.md §8: broker, processor and gateway as three processes joined
// through the broker; a reading from mosquitto_pub reaches a WebSocket client of the gateway.

const run = promisify(execFile)
const SECRET = 'roles-device-secret-0123456789abcdef'
const ADMIN = 'roles-admin-token-0123456789'
const DEVICE = '860100000000123'

describe('plantwatt broker, processor and gateway as separate processes', () => {
  const roles: RunningPlantwatt[] = []
  let broker: RunningPlantwatt
  let gateway: RunningPlantwatt
  let processor: RunningPlantwatt

  beforeAll(async () => {
    const plantFile = join(tmpdir(), `plantwatt-roles-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    const env = { PLANTWATT_DEVICE_SECRET: SECRET, PLANTWATT_ADMIN_TOKEN: ADMIN }
    const common = ['--plant', plantFile, '--host', '127.0.0.1']
    broker = await startRole(['broker', ...common, '--mqtt-port', '0', '--http-port', '0'], env)
    roles.push(broker)
    const brokerUrl = `mqtt://127.0.0.1:${broker.mqttPort}`
    processor = await startRole(
      ['processor', ...common, '--http-port', '0', '--broker', brokerUrl],
      env,
      'processor subscribed',
    )
    roles.push(processor)
    gateway = await startRole(['gateway', ...common, '--http-port', '0', '--broker', brokerUrl], env)
    roles.push(gateway)
  })

  afterAll(async () => {
    for (const role of roles.reverse()) expect(await role.stop()).toBe(0)
  })

  it('carries a device reading from the broker process to a live frame of the gateway process', async () => {
    const client = await WsTestClient.connect(`ws://127.0.0.1:${gateway.httpPort}/ws?token=${ADMIN}`)
    client.send({ op: 'subscribe', id: 'l', channel: 'live', scope: 'yibin/electrode/coating-1' })
    await client.next((frame) => frame.type === 'live')
    await run('mosquitto_pub', [
      ...['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-V', 'mqttv311', '-q', '1'],
      ...['-i', DEVICE, '-u', DEVICE, '-P', deriveDevicePassword(SECRET, DEVICE)],
      ...['-t', `sites/yibin/devices/${DEVICE}/up`, '-m', '[{"n":"power","u":"W","v":4321}]'],
    ])
    const frame = await client.next((f) => f.type === 'live' && f.powerW === 4321, 3000)
    expect(frame.scope).toBe('yibin/electrode/coating-1')
    await client.close()

    // What the gateway must ask of the processor process travels over the broker too.
    const device = await fetch(`http://127.0.0.1:${gateway.httpPort}/api/v1/devices/${DEVICE}`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    })
    expect(device.status).toBe(200)
    expect(await device.json()).toMatchObject({ accepted: 1, last: [{ name: 'power', value: 4321 }] })
    const energy = await fetch(`http://127.0.0.1:${gateway.httpPort}/api/v1/energy?scope=yibin&step=1h`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    })
    expect(energy.status).toBe(200)
    expect(Array.isArray(await energy.json())).toBe(true)

    // The processor process serves its own health and metrics.
    expect((await fetch(`http://127.0.0.1:${processor.httpPort}/readyz`)).status).toBe(200)
    const metrics = await (await fetch(`http://127.0.0.1:${processor.httpPort}/metrics`)).text()
    expect(metrics).toMatch(/plantwatt_readings_accepted_total 1\b/)
  })

  it('serves the broker role health and metrics on its own HTTP port', async () => {
    expect((await fetch(`http://127.0.0.1:${broker.httpPort}/readyz`)).status).toBe(200)
    const metrics = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text()
    // The processor and gateway are connected as internal clients, and the device connected once.
    expect(metrics).toMatch(/plantwatt_broker_connects_total [3-9]/)
  })

  it('tunes across the processes: a command reaches the device through the broker process, its ack comes back (issue 15)', async () => {
    // The coater-1 oven: power from ...123, fan_hz and solvent_ppm from ...124 (example plant).
    const SENSOR = '860100000000124'
    const connect = (id: string) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, {
        clientId: id,
        username: id,
        password: deriveDevicePassword(SECRET, id),
        protocolVersion: 4,
        reconnectPeriod: 0,
      })
    const meter = await connect(DEVICE)
    const sensor = await connect(SENSOR)
    const commands: SetpointCommand[] = []
    sensor.on('message', (_topic, payload) => {
      const command = parseSetpointCommand(payload)
      if (command) commands.push(command)
    })
    await sensor.subscribeAsync(`sites/yibin/devices/${SENSOR}/down`, { qos: 1 })
    const api = (path: string) =>
      fetch(`http://127.0.0.1:${gateway.httpPort}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
    const accepted = async () =>
      ((await (await api(`/api/v1/devices/${SENSOR}`)).json()) as { accepted?: number }).accepted ?? 0
    try {
      // Readings in event time from 30 min ago, a minute per message: the oven runs (200 kW) at
      // 50 Hz with solvent well below the limit (400 × 0.95), so the tuner steps down.
      const t0 = Math.floor(Date.now() / 1000) - 1800
      let t = t0
      let fan = 50
      let expected = 0
      const minute = async () => {
        const power = []
        const process = []
        for (let k = 0; k < 6; k++, t += 10) {
          power.push({ n: 'power', u: 'W', v: 200_000, t })
          process.push({ n: 'fan_hz', v: fan, t }, { n: 'solvent_ppm', v: 300 + (k % 3), t })
        }
        await meter.publishAsync(`sites/yibin/devices/${DEVICE}/up`, JSON.stringify(power), { qos: 1 })
        await sensor.publishAsync(`sites/yibin/devices/${SENSOR}/up`, JSON.stringify(process), { qos: 1 })
        expected += process.length
        // The processor process has them once the gateway process's query says so: every one (a
        // QoS 1 uplink overtaken in the broker's session store was once dropped; see
        // services/broker/test/persistent-delivery.test.ts).
        await expect.poll(accepted, { timeout: 5000 }).toBeGreaterThanOrEqual(expected)
      }
      while (commands.length === 0 && t < t0 + 1500) await minute()
      expect(commands.length).toBeGreaterThan(0)
      const command = commands[0]!
      expect(command).toMatchObject({ type: 'setpoint', name: 'fan_hz', value: 48 })
      // The device applies it and answers in its own time (CONTRACT.md §3), then reports the value.
      await sensor.publishAsync(
        `sites/yibin/devices/${SENSOR}/ack`,
        JSON.stringify({ id: command.id, status: 'applied', t: t - 10 }),
        { qos: 1 },
      )
      fan = command.value
      // Readings showing the new value confirm it (sent until one gets through, at most 5 minutes).
      const confirmed = async () => {
        const body = (await (await api('/api/v1/setpoints?scope=yibin/electrode/coating-1')).json()) as {
          equipment: { history: { id: string; status: string }[] }[]
        }
        return body.equipment[0]?.history.some((e) => e.id === command.id && e.status === 'applied') ?? false
      }
      for (let k = 0; k < 5 && !(await confirmed()); k++) await minute()
      await expect
        .poll(
          async () => {
            const body = (await (await api('/api/v1/setpoints?scope=yibin/electrode/coating-1')).json()) as {
              equipment: { history: { id: string; status: string }[]; current: number }[]
            }
            return body.equipment[0]?.history.some((e) => e.id === command.id && e.status === 'applied')
          },
          { timeout: 5000 },
        )
        .toBe(true)

      // A breach (above max = 400 ppm): at once a step back towards the last good setpoint and a
      // `constraint` alert, both across the processes.
      const breach = async () => {
        const breachAt = t
        t += 10
        await sensor.publishAsync(
          `sites/yibin/devices/${SENSOR}/up`,
          JSON.stringify([
            { n: 'fan_hz', v: fan, t: breachAt },
            { n: 'solvent_ppm', v: 450, t: breachAt },
          ]),
          { qos: 1 },
        )
        await meter.publishAsync(
          `sites/yibin/devices/${DEVICE}/up`,
          JSON.stringify([{ n: 'power', u: 'W', v: 200_000, t: breachAt }]),
          { qos: 1 },
        )
      }
      for (let k = 0; k < 5 && commands.length < 2; k++) {
        await breach()
        await expect
          .poll(() => commands.length, { timeout: 2000 })
          .toBeGreaterThanOrEqual(2)
          .catch(() => undefined)
      }
      await expect.poll(() => commands.length, { timeout: 5000 }).toBeGreaterThanOrEqual(2)
      expect(commands[1]).toMatchObject({ name: 'fan_hz', value: 50 })
      await expect
        .poll(
          async () =>
            (
              (await (await api('/api/v1/alerts?scope=yibin/electrode/coating-1')).json()) as {
                kind: string
                state: string
              }[]
            ).some((a) => a.kind === 'constraint' && a.state === 'raised'),
          { timeout: 5000 },
        )
        .toBe(true)
    } finally {
      await meter.endAsync()
      await sensor.endAsync()
    }
  })
})
