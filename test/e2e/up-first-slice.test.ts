import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'
import { type Frame, upgradeStatus, WsTestClient } from '../support/ws-client.ts'

// Issue 2's "done when": a device publishing with mosquitto_pub (Debian's client, a third party)
// shows up in live frames for its site, line and equipment; bad credentials and foreign topics
// are refused. The whole system runs as `plantwatt up`, a separate process, on free ports.

const run = promisify(execFile)
const SECRET = 'e2e-device-secret-0123456789abcdef'
const ADMIN = 'e2e-admin-token-0123456789'
const DEVICE = '860100000000123'
const OTHER_DEVICE = '860100000000223'

function mosquittoPub(port: number, deviceId: string, password: string, topic: string, message: string) {
  return run('mosquitto_pub', [
    ...['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-q', '1'],
    ...['-i', deviceId, '-u', deviceId, '-P', password, '-t', topic, '-m', message],
  ])
}

describe('plantwatt up: first end-to-end slice', () => {
  let system: RunningPlantwatt
  let wsUrl: string

  beforeAll(async () => {
    const dir = await import('node:os').then((os) => os.tmpdir())
    const plantFile = join(dir, `plantwatt-e2e-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    system = await startPlantwatt(['--plant', plantFile], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
    })
    wsUrl = `ws://127.0.0.1:${system.httpPort}/ws`
  })

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
  })

  it('reports bound ports in one "listening" log record', () => {
    expect(system.mqttPort).toBeGreaterThan(0)
    expect(system.httpPort).toBeGreaterThan(0)
    expect(system.logs.filter((record) => record.msg === 'listening')).toHaveLength(1)
  })

  it('uses every core by default, whatever the size of the plant (issue 16)', () => {
    const listening = system.logs.find((record) => record.msg === 'listening')!
    expect(listening.workers).toBe(availableParallelism())
  })

  it('refuses a WebSocket upgrade without a valid token with 401', async () => {
    expect(await upgradeStatus(wsUrl)).toBe(401)
    expect(await upgradeStatus(`${wsUrl}?token=wrong`)).toBe(401)
  })

  it('shows a mosquitto_pub reading in live frames for its site, line and equipment within a second', async () => {
    const client = await WsTestClient.connect(`${wsUrl}?token=${ADMIN}`)
    const scopes = { s: 'yibin', l: 'yibin/electrode/coating-1', e: 'yibin/electrode/coating-1/coater-1-oven' }
    for (const [id, scope] of Object.entries(scopes)) {
      client.send({ op: 'subscribe', id, channel: 'live', scope })
      await client.next((frame) => frame.type === 'subscribed' && frame.id === id)
      const snapshot = await client.next((frame) => frame.type === 'live' && frame.sub === id)
      expect(snapshot.scope).toBe(scope)
    }

    const published = Date.now()
    await mosquittoPub(
      system.mqttPort,
      DEVICE,
      deriveDevicePassword(SECRET, DEVICE),
      `sites/yibin/devices/${DEVICE}/up`,
      '[{"n":"power","u":"W","v":1500}]',
    )
    const withPower = (sub: string) => (frame: Frame) =>
      frame.type === 'live' && frame.sub === sub && frame.powerW === 1500
    // At most one frame a second per subscription, so the frame may wait up to a second behind the snapshot.
    const frames = await Promise.all(['s', 'l', 'e'].map((sub) => client.next(withPower(sub), 1500)))
    const elapsed = Date.now() - published
    expect(elapsed).toBeLessThan(1500)
    for (const frame of frames) {
      expect(typeof frame.at).toBe('number')
      expect(Math.abs((frame.at as number) - published)).toBeLessThan(5000)
    }

    // The other line's scope is not moved by this device.
    client.send({ op: 'subscribe', id: 'o', channel: 'live', scope: 'yibin/electrode/coating-2' })
    const other = await client.next((frame) => frame.type === 'live' && frame.sub === 'o')
    expect(other.powerW).toBe(0)

    // The same reading in the device's counters (asked of the processor over the bus) and metrics.
    const device = await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/devices/${DEVICE}`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    })
    expect(await device.json()).toMatchObject({
      id: DEVICE,
      accepted: 1,
      last: [{ name: 'power', value: 1500, t: expect.any(Number) }],
    })
    const metrics = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
    expect(metrics).toMatch(/plantwatt_readings_accepted_total 1\b/)
    expect(metrics).toMatch(/plantwatt_ws_clients 1\b/)
    await client.close()
  })

  it('refuses a wrong password and an unknown device', async () => {
    const wrong = mosquittoPub(system.mqttPort, DEVICE, 'not-the-password', `sites/yibin/devices/${DEVICE}/up`, '[]')
    await expect(wrong).rejects.toMatchObject({ stderr: expect.stringMatching(/bad user name or password/i) })
    const unknown = mosquittoPub(
      system.mqttPort,
      '999999999999999',
      deriveDevicePassword(SECRET, '999999999999999'),
      'sites/yibin/devices/999999999999999/up',
      '[]',
    )
    await expect(unknown).rejects.toMatchObject({ stderr: expect.stringMatching(/not authori[sz]ed/i) })
  })

  it("closes the connection of a device that publishes to another device's topic", async () => {
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
      clientId: DEVICE,
      username: DEVICE,
      password: deriveDevicePassword(SECRET, DEVICE),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
    device.publish(`sites/yibin/devices/${OTHER_DEVICE}/up`, '[{"n":"power","u":"W","v":9999}]', { qos: 1 })
    await closed
    expect(device.connected).toBe(false)
    await device.endAsync(true)

    // The foreign reading was not applied to the other device's equipment.
    const response = await fetch(
      `http://127.0.0.1:${system.httpPort}/api/v1/live?scope=yibin/electrode/coating-2/coater-2-oven`,
      { headers: { authorization: `Bearer ${ADMIN}` } },
    )
    expect(response.status).toBe(200)
    expect(((await response.json()) as { powerW: number }).powerW).toBe(0)
  })
})

describe('plantwatt up: MQTT over WebSocket and metrics', () => {
  let system: RunningPlantwatt

  beforeAll(async () => {
    system = await startPlantwatt([], { PLANTWATT_DEVICE_SECRET: SECRET, PLANTWATT_ADMIN_TOKEN: ADMIN })
  })

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
  })

  it('accepts a device on /mqtt with the same authentication as TCP', async () => {
    const demoDevice = await firstDemoDevice(system.httpPort)
    const url = `ws://127.0.0.1:${system.httpPort}/mqtt`
    const device = await mqtt.connectAsync(url, {
      clientId: demoDevice.id,
      username: demoDevice.id,
      password: deriveDevicePassword(SECRET, demoDevice.id),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    await device.publishAsync(`sites/yibin/devices/${demoDevice.id}/up`, '[{"n":"power","u":"W","v":1234}]', { qos: 1 })
    await device.endAsync()
    await expect(
      mqtt.connectAsync(url, {
        clientId: demoDevice.id,
        username: demoDevice.id,
        password: 'wrong',
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
    ).rejects.toMatchObject({ code: 4 })
  })

  it('serves Prometheus metrics without a token, counting broker refusals', async () => {
    const response = await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).toMatch(/plantwatt_broker_connect_refusals_total\{reason="bad_password"\} 1/)
    expect(text).toMatch(/plantwatt_broker_messages_in_total 1/)
    expect(text).toMatch(/process_resident_memory_bytes/)
  })
})

async function firstDemoDevice(httpPort: number): Promise<{ id: string }> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/api/v1/plant`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  })
  const plant = (await response.json()) as { sites: PlantNode[] }
  const find = (node: PlantNode): string | undefined =>
    node.equipment?.devices[0] ?? node.children?.map(find).find((id) => id !== undefined)
  const id = plant.sites.map(find).find((found) => found !== undefined)
  if (!id) throw new Error('the demo plant has no device')
  return { id }
}

interface PlantNode {
  children?: PlantNode[]
  equipment?: { devices: string[] }
}
