import { availableParallelism } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningPlantwatt, startPlantwatt, startRole } from '../support/plantwatt-process.ts'
import { WsTestClient } from '../support/ws-client.ts'

// `plantwatt up --demo` on the built-in plant: a newcomer sees a live plant with numbers moving,
// and two days of its history at once (issue 17): the simulator's model runs the last 48 hours
// through the real ingest path at full speed before the devices go live.

const ADMIN = 'e2e-demo-admin-token-0123456789'
const HOUR_MS = 3_600_000
/** The promise: history, idle states and alerts within the first minute; the test allows two. */
const READY_WITHIN_MS = 120_000

interface EnergyRow {
  t: number
  energyWh: number
  idleWh?: number
}

async function api<T>(system: RunningPlantwatt, path: string, query: Record<string, string | number> = {}) {
  const url = new URL(path, `http://127.0.0.1:${system.httpPort}`)
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, String(value))
  const response = await fetch(url, { headers: { authorization: `Bearer ${ADMIN}` } })
  expect(response.status, `${path} ${await response.clone().text()}`).toBe(200)
  return (await response.json()) as T
}

async function metric(system: RunningPlantwatt, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `))
  expect(line, name).toBeDefined()
  return Number(line!.split(' ')[1])
}

describe('plantwatt up --demo', () => {
  let system: RunningPlantwatt
  let startedAtMs: number

  beforeAll(async () => {
    startedAtMs = Date.now()
    system = await startPlantwatt(['--demo'], { PLANTWATT_ADMIN_TOKEN: ADMIN, PLANTWATT_DEVICE_SECRET: undefined })
  })

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
  })

  it(
    'runs the last two days of the demo plant through the pipeline first, within the first minute',
    async () => {
      const ready = await system.waitForLog('demo history ready', READY_WITHIN_MS)
      // On every core (issue 16): the backfill runs in the primary beside the broker workers.
      expect(system.logs.find((record) => record.msg === 'listening')!.workers).toBe(availableParallelism())
      expect(Date.now() - startedAtMs).toBeLessThan(READY_WITHIN_MS)
      // Within the first minute on this 2-core machine alone (docs/benchmarks.md: about 25 s); the
      // machine is shared with other work, so the wall clock is held to the two minutes above and
      // the process's CPU for the backfill to the minute.
      expect(ready.cpuMs as number).toBeLessThan(60_000)
      expect(ready.durationMs as number).toBeLessThan(READY_WITHIN_MS)
      // Two days, ending at the wall clock of its end (the site clock continues from there live).
      expect(ready.toMs as number).toBeGreaterThanOrEqual(startedAtMs)
      expect(ready.toMs as number).toBeLessThanOrEqual(Date.now())
      expect((ready.toMs as number) - (ready.fromMs as number)).toBeGreaterThan(47.9 * HOUR_MS)
      expect(ready.readings as number).toBeGreaterThan(100_000)
      expect(ready.rejected).toBe(0)

      // The processor counted them as readings like any other (GET /metrics).
      expect(await metric(system, 'plantwatt_readings_accepted_total')).toBeGreaterThanOrEqual(ready.readings as number)

      // The history store answers the two days in hourly buckets.
      const to = Date.now()
      const rows = await api<EnergyRow[]>(system, '/api/v1/energy', {
        scope: 'yibin',
        step: '1h',
        from: to - 48 * HOUR_MS,
        to,
      })
      const filled = rows.filter((row) => row.energyWh > 0)
      expect(filled.length).toBeGreaterThanOrEqual(24)
      expect(filled.some((row) => (row.idleWh ?? 0) > 0)).toBe(true)

      // Idle alerts of the past two days are listed, and the equipment states are known.
      const alerts = await api<{ kind: string; scope: string }[]>(system, '/api/v1/alerts', { scope: 'yibin' })
      expect(alerts.some((alert) => alert.kind === 'idle')).toBe(true)
      const plant = await api<{ sites: unknown[] }>(system, '/api/v1/plant')
      const states = [...JSON.stringify(plant).matchAll(/"state":"(\w+)"/g)].map((match) => match[1])
      expect(states.length).toBeGreaterThan(100)
      expect(states.filter((state) => state === 'unknown').length).toBeLessThan(states.length / 4)
    },
    READY_WITHIN_MS + 10_000,
  )

  it('then connects every demo device with its own session and shows the site power moving', async () => {
    const started = await system.waitForLog('demo fleet started', READY_WITHIN_MS)
    expect(started.devices).toBe(300)

    const client = await WsTestClient.connect(`ws://127.0.0.1:${system.httpPort}/ws?token=${ADMIN}`)
    client.send({ op: 'subscribe', id: 'site', channel: 'live', scope: 'yibin' })
    // The first frame carries the state the backfill left; live devices move it from there.
    const first = await client.next((frame) => frame.type === 'live' && (frame.powerW as number) > 0, 15_000)
    const later = await client.next(
      (frame) => frame.type === 'live' && frame.powerW !== first.powerW && (frame.at as number) > (first.at as number),
      15_000,
    )
    expect(later.powerW).toBeGreaterThan(0)
    // Live readings continue at the wall clock: the site clock is not hours behind it.
    expect(Date.now() - (later.at as number)).toBeLessThan(60_000)
    await client.close()

    const plant = await api<{ sites: { id: string }[] }>(system, '/api/v1/plant')
    expect(plant.sites.map((site) => site.id)).toEqual(['yibin'])
  })

  it(
    'backfills only the gap since the newest stored reading after a restart on the same data directory',
    async () => {
      const first = await system.waitForLog('demo history ready', READY_WITHIN_MS)
      const acceptedBefore = await metric(system, 'plantwatt_readings_accepted_total')
      const duplicatesBefore = await metric(system, 'plantwatt_readings_duplicate_total')
      const { dataDir } = system
      expect(await system.stop()).toBe(0)

      system = await startRole(
        ['up', '--demo', '--host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', '--data-dir', dataDir],
        { PLANTWATT_ADMIN_TOKEN: ADMIN, PLANTWATT_DEVICE_SECRET: undefined },
      )
      const again = await system.waitForLog('demo history ready', READY_WITHIN_MS)
      // From where the stored history ends (the last run's live readings), not two days back.
      expect(again.fromMs as number).toBeGreaterThan(first.toMs as number)
      expect((again.toMs as number) - (again.fromMs as number)).toBeLessThan(5 * 60_000)
      expect(again.readings as number).toBeLessThan((first.readings as number) / 100)
      expect(again.duplicates).toBe(0)

      // The restored counter goes on from where it was: nothing counted twice.
      const acceptedAfter = await metric(system, 'plantwatt_readings_accepted_total')
      expect(acceptedAfter).toBeGreaterThanOrEqual(acceptedBefore + (again.readings as number))
      expect(acceptedAfter).toBeLessThan(acceptedBefore + (first.readings as number) / 10)
      expect(await metric(system, 'plantwatt_readings_duplicate_total')).toBe(duplicatesBefore)
      await system.waitForLog('demo fleet started', READY_WITHIN_MS)
    },
    2 * READY_WITHIN_MS,
  )
})
