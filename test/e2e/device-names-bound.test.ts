import { stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'

// Issue 12 finding 4: one device could grow the processor without bound (every new SenML name a
// series and a counter entry, kept forever and checkpointed). CONTRACT.md §2 (v1.1): at most 16
// distinct process-variable names per device, past which a record is `too_many_names`; the plant's
// tuning and constraint names (and power, energy, output) are always accepted and do not count; a
// name unseen for `maxAgeS` of site clock is forgotten; DELETE /api/v1/devices/{id}/names (admin)
// forgets a device's names at once. A real `plantwatt up`, a real MQTT device, answers over HTTP,
// and a restart from the same data directory.

const SECRET = 'names-device-secret-0123456789abcdef'
const ADMIN = 'names-admin-token-0123456789'
const OVEN = '860100000000123'
const MAX_AGE_S = 600

interface DeviceAnswer {
  accepted: number
  rejected: Record<string, number>
  last: { name: string; t: number; value: number }[]
}

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const names = (prefix: string, count: number, from = 0) =>
  Array.from({ length: count }, (_, k) => `${prefix}_${from + k}`)

describe('process-variable names per device are bounded (issue 12 finding 4)', () => {
  let plantFile: string
  let system: RunningPlantwatt
  let device: MqttClient
  const t0 = Math.floor(Date.now() / 1000)

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${system.httpPort}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${ADMIN}`, ...init.headers },
    })
  const answer = async () => (await (await api(`/api/v1/devices/${OVEN}`)).json()) as DeviceAnswer
  const handled = (a: DeviceAnswer) => a.accepted + Object.values(a.rejected).reduce((sum, n) => sum + n, 0)

  async function connect(): Promise<MqttClient> {
    return mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
      clientId: OVEN,
      username: OVEN,
      password: deriveDevicePassword(SECRET, OVEN),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
  }

  /** Publishes one pack (QoS 1, so it is durable) and waits until the processor has judged it. */
  async function send(t: number, measurements: string[], extra: object[] = []): Promise<DeviceAnswer> {
    const before = handled(await answer())
    const pack = [{ bt: t }, ...extra, ...measurements.map((n, k) => ({ n, v: k }))]
    await device.publishAsync(`sites/yibin/devices/${OVEN}/up`, JSON.stringify(pack), { qos: 1 })
    const expected = before + extra.length + measurements.length
    return until(answer, (a) => handled(a) >= expected)
  }

  beforeAll(async () => {
    const plant = examplePlant()
    plant.sites[0]!.maxAgeS = MAX_AGE_S
    plantFile = join(tmpdir(), `plantwatt-names-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(plant))
    system = await startPlantwatt(['--plant', plantFile], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
    })
    device = await connect()
  })

  afterAll(async () => {
    await device?.endAsync()
    expect(await system?.stop()).toBe(0)
  })

  it('accepts 16 names, then rejects the 17th and later ones too_many_names; tuning names do not count', async () => {
    const a = await send(t0 - 400, ['fan_hz', 'solvent_ppm', ...names('pv', 40)], [{ n: 'power', u: 'W', v: 1500 }])
    expect(a.accepted).toBe(1 + 2 + 16)
    expect(a.rejected.too_many_names).toBe(24)
    expect(a.last.map((entry) => entry.name).sort()).toEqual(
      ['power', 'fan_hz', 'solvent_ppm', ...names('pv', 16)].sort(),
    )
  })

  it('stays bounded under a flood of new names: the device answer stays small, the rejections are counted', async () => {
    for (let pack = 0; pack < 20; pack++) await send(t0 - 400, names(`flood${pack}`, 600))
    const a = await answer()
    expect(a.rejected.too_many_names).toBe(24 + 20 * 600)
    expect(a.last).toHaveLength(19)
    const body = await (await api(`/api/v1/devices/${OVEN}`)).text()
    expect(body.length).toBeLessThan(4096)
    const metrics = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
    expect(metrics).toMatch(/plantwatt_readings_rejected_total\{reason="too_many_names"\} 12024\b/)
    // A name already held keeps being accepted.
    const again = await send(t0 - 399, ['pv_0', 'fan_hz'])
    expect(again.accepted).toBe(19 + 2)
  })

  it('forgets a device names at once with DELETE /api/v1/devices/{id}/names (admin only)', async () => {
    const anonymous = await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/devices/${OVEN}/names`, {
      method: 'DELETE',
    })
    expect(anonymous.status).toBe(401)
    const unknown = await api('/api/v1/devices/nope/names', { method: 'DELETE' })
    expect(unknown.status).toBe(404)
    const forgotten = await api(`/api/v1/devices/${OVEN}/names`, { method: 'DELETE' })
    expect(forgotten.status).toBe(200)
    expect(await forgotten.json()).toEqual({ id: OVEN, forgotten: 16 })
    const after = await answer()
    expect(after.last.map((entry) => entry.name).sort()).toEqual(['fan_hz', 'power', 'solvent_ppm'])

    const a = await send(t0 - 400, names('qv', 17))
    expect(a.accepted).toBe(21 + 16)
    expect(a.rejected.too_many_names).toBe(12024 + 1)
  })

  it('forgets a name unseen for maxAgeS of site clock', async () => {
    // The qv names were last seen at t0 - 400; the site clock moves to t0 + 250, 650 s past them.
    await send(t0 + 250, [], [{ n: 'power', u: 'W', v: 1500 }])
    const a = await send(t0 + 250, names('rv', 16))
    expect(a.rejected.too_many_names).toBe(12025)
    expect(a.last.map((entry) => entry.name).filter((name) => name.startsWith('qv'))).toEqual([])
    expect(a.last.map((entry) => entry.name).filter((name) => name.startsWith('rv'))).toHaveLength(16)
  })

  it('keeps the bound over a restart: a small checkpoint, the same names, still refusing new ones', async () => {
    await device.endAsync()
    expect(await system.stop()).toBe(0)
    // The processor's state store (its checkpoint, issue 13): the example plant's state is a few
    // hundred KB of bucket columns and state; 12,000 names' series were MBs.
    const checkpoint = await stat(join(system.dataDir, 'processor', 'state', 'data.mdb'))
    expect(checkpoint.size).toBeLessThan(1_000_000)
    system = await startPlantwatt(['--plant', plantFile, '--data-dir', system.dataDir], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
    })
    device = await connect()
    const restored = await answer()
    expect(restored.last.map((entry) => entry.name).filter((name) => name.startsWith('rv'))).toHaveLength(16)
    const a = await send(t0 + 251, ['sv_0', 'rv_0'])
    expect(a.rejected.too_many_names).toBe(12026)
    expect(a.accepted).toBe(restored.accepted + 1)
  })
})

describe('the bound is an option: --max-process-names / PLANTWATT_MAX_PROCESS_NAMES (CONTRACT.md §2)', () => {
  it('rejects the third name of a device when started with PLANTWATT_MAX_PROCESS_NAMES=2', async () => {
    const plantFile = join(tmpdir(), `plantwatt-names-option-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    const system = await startPlantwatt(['--plant', plantFile], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
      PLANTWATT_MAX_PROCESS_NAMES: '2',
    })
    try {
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
        clientId: OVEN,
        username: OVEN,
        password: deriveDevicePassword(SECRET, OVEN),
        protocolVersion: 4,
        reconnectPeriod: 0,
      })
      const pack = [
        { n: 'a', v: 1 },
        { n: 'b', v: 2 },
        { n: 'c', v: 3 },
        { n: 'fan_hz', v: 40 },
      ]
      await device.publishAsync(`sites/yibin/devices/${OVEN}/up`, JSON.stringify(pack), { qos: 1 })
      await device.endAsync()
      const read = async () =>
        (await (
          await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/devices/${OVEN}`, {
            headers: { authorization: `Bearer ${ADMIN}` },
          })
        ).json()) as DeviceAnswer
      const a = await until(read, (answer) => answer.accepted + (answer.rejected.too_many_names ?? 0) >= 4)
      expect(a.accepted).toBe(3)
      expect(a.rejected.too_many_names).toBe(1)
    } finally {
      expect(await system.stop()).toBe(0)
    }
  })
})
