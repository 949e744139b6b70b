import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { deriveDevicePassword } from '@plantwatt/contract'
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
})
