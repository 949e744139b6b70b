import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'

// Issue 12 finding 13: bad input that was accepted. Real `plantwatt up` processes, a real MQTT
// client publishing QoS 1 (PUBACK once durable), answers over HTTP:
// - CONTRACT.md §7 (v1.1): a reading more than `maxAgeS` behind the wall clock at receipt is
//   `too_old`, also for a fresh site (2000-01-01 or t = −1e12 used to become the site clock, raise
//   alerts dated then, and drag the site 26 years forward at the next real reading);
//   `--accept-old` (PLANTWATT_ACCEPT_OLD) drops that rule for replaying old recordings;
// - a negative `energy` counter and a site meter's absurd power are `out_of_range`;
// - `to` of 400 nines on GET /api/v1/energy is a 400, not a 500.

const SECRET = 'bad-input-device-secret-0123456789abcdef'
const ADMIN = 'bad-input-admin-token-0123456789'
const OVEN = '860100000000123'
const PV = '860100000000001'
const OLD_2025_S = Date.UTC(2025, 2, 3, 13, 0) / 1000

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('bad input is refused with a counted reason (issue 12 finding 13)', () => {
  let system: RunningPlantwatt
  let acceptOld: RunningPlantwatt

  const api = (target: RunningPlantwatt, path: string) =>
    fetch(`http://127.0.0.1:${target.httpPort}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const deviceCounters = async (target: RunningPlantwatt, id: string) =>
    (await (await api(target, `/api/v1/devices/${id}`)).json()) as {
      accepted: number
      rejected: Record<string, number>
    }

  async function publish(target: RunningPlantwatt, deviceId: string, payload: unknown): Promise<void> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${target.mqttPort}`, {
      clientId: deviceId,
      username: deviceId,
      password: deriveDevicePassword(SECRET, deviceId),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    try {
      await client.publishAsync(`sites/yibin/devices/${deviceId}/up`, JSON.stringify(payload), { qos: 1 })
    } finally {
      await client.endAsync()
    }
  }

  beforeAll(async () => {
    const plantFile = join(tmpdir(), `plantwatt-bad-input-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    const env = { PLANTWATT_DEVICE_SECRET: SECRET, PLANTWATT_ADMIN_TOKEN: ADMIN }
    ;[system, acceptOld] = await Promise.all([
      startPlantwatt(['--plant', plantFile], env),
      startPlantwatt(['--plant', plantFile], { ...env, PLANTWATT_ACCEPT_OLD: '1' }),
    ])
  })

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
    expect(await acceptOld?.stop()).toBe(0)
  })

  it('rejects readings far behind the wall clock as too_old, so a fresh site keeps no clock and no alerts', async () => {
    await publish(system, OVEN, [{ n: 'power', u: 'W', v: 1500, t: Date.UTC(2000, 0, 1) / 1000 }])
    await publish(system, OVEN, [{ n: 'power', u: 'W', v: 1500, t: -1e12 }])
    await publish(system, OVEN, [{ n: 'power', u: 'W', v: 1500, t: OLD_2025_S }])
    const counters = await until(
      () => deviceCounters(system, OVEN),
      (c) => (c.rejected.too_old ?? 0) + c.accepted >= 3,
    )
    expect(counters.rejected.too_old).toBe(3)
    expect(counters.accepted).toBe(0)
    const live = (await (await api(system, '/api/v1/live?scope=yibin')).json()) as { at: number | null }
    expect(live.at).toBeNull()

    // The next real reading sets the clock to now, not 26 years after 2000.
    const before = Date.now()
    await publish(system, OVEN, [{ n: 'power', u: 'W', v: 1500 }])
    const after = await until(
      () => api(system, '/api/v1/live?scope=yibin').then((r) => r.json() as Promise<{ at: number | null }>),
      (figures) => figures.at !== null,
    )
    expect(after.at).toBeGreaterThanOrEqual(before - 1000)
    const alerts = (await (await api(system, '/api/v1/alerts?scope=yibin')).json()) as { at: number }[]
    for (const alert of alerts) expect(alert.at).toBeGreaterThanOrEqual(before - 1000)
    const metrics = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
    expect(metrics).toMatch(/plantwatt_readings_rejected_total\{reason="too_old"\} 3\b/)
  })

  it('with --accept-old (PLANTWATT_ACCEPT_OLD) takes a 2025 recording, still refusing the absurd past', async () => {
    // A time that resolves to before 1978 (2^28 s, RFC 8428 §4.5.3) is no recording: still too_old.
    await publish(acceptOld, OVEN, [{ n: 'power', u: 'W', v: 1500, t: -1e12 }])
    await publish(acceptOld, OVEN, [{ n: 'power', u: 'W', v: 1500, t: OLD_2025_S }])
    const counters = await until(
      () => deviceCounters(acceptOld, OVEN),
      (c) => c.accepted + (c.rejected.too_old ?? 0) >= 2,
    )
    expect(counters.accepted).toBe(1)
    expect(counters.rejected.too_old).toBe(1)
    // Live figures reach the gateway on the processor's next publishing round.
    const live = await until(
      () => api(acceptOld, '/api/v1/live?scope=yibin').then((r) => r.json() as Promise<{ at: number | null }>),
      (figures) => figures.at !== null,
    )
    expect(live.at).toBe(OLD_2025_S * 1000)
  })

  it('rejects a negative energy counter and a site meter out of range, counting each', async () => {
    await publish(system, OVEN, [{ n: 'energy', u: 'Wh', s: -5000 }])
    // The example site's equipment is rated 500 kW in all; a PV meter reading 1 PW is absurd.
    await publish(system, PV, [{ n: 'power', u: 'W', v: 1e15 }])
    await publish(system, PV, [{ n: 'power', u: 'W', v: -1e15 }])
    await publish(system, PV, [{ n: 'power', u: 'W', v: 20_000, t: Date.now() / 1000 - 1 }])
    const oven = await until(
      () => deviceCounters(system, OVEN),
      (c) => (c.rejected.out_of_range ?? 0) >= 1,
    )
    expect(oven.rejected.out_of_range).toBe(1)
    const pv = await until(
      () => deviceCounters(system, PV),
      (c) => (c.rejected.out_of_range ?? 0) + c.accepted >= 3,
    )
    expect(pv.rejected.out_of_range).toBe(2)
    expect(pv.accepted).toBe(1)
  })

  it('answers 400, not 500, to times out of range on GET /api/v1/energy', async () => {
    const nines = '9'.repeat(400)
    for (const query of [`to=${nines}`, `from=-${nines}`, `to=${'9'.repeat(20)}`]) {
      const response = await api(system, `/api/v1/energy?scope=yibin&step=1h&${query}`)
      expect(response.status, query).toBe(400)
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('bad_request')
    }
    expect((await api(system, `/api/v1/energy?scope=yibin&step=1h&to=${Date.now()}`)).status).toBe(200)
  })
})
