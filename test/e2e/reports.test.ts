import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus, createMqttBus } from '@plantwatt/bus'
import type { PlantModel } from '@plantwatt/contract'
import { deviceTopic } from '@plantwatt/contract'
import { createGateway, type Gateway } from '@plantwatt/gateway'
import { HistoryStore } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { Processor } from '@plantwatt/processor'
import { IngestJournal, TokenStore } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import { parse } from 'csv-parse/sync'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WsTestClient } from '../support/ws-client.ts'

// GET /api/v1/reports (CONTRACT.md §6) and the optional bucket fields it sums (§5: pvWh, idleCo2G,
// outputUnits), over real HTTP and WebSocket against a real processor (journal, LMDB history store)
// and gateway, in one process and with the gateway on its own MQTT connection (split roles).
//
// The plant is in Europe/Berlin, fed six and a half days of readings that cross a Monday, a month
// boundary and the spring DST change (Sunday 2025-03-30 has 23 hours). Every counter steps at
// quarter-hour boundaries, so each quarter's energy, PV, import and output are known exactly here,
// and every expected figure is computed below from the readings sent by §7's rules — never read
// back from plantwatt.

const SITE = 'werk'
const A = 'werk/a1/l1/ea' // energy and power; idle 16:00–18:00 local every day (PV covers part)
const B = 'werk/a1/l1/eb' // energy and an output counter (45 units a quarter, reset once)
const C = 'werk/a1/l2/ec' // energy only
const GRID_G_PER_KWH = 400
const MARKET_G_PER_KWH = (1 - 0.25) * 600

const model: PlantModel = {
  version: 1,
  sites: [
    {
      id: SITE,
      name: 'Werk',
      timezone: 'Europe/Berlin',
      latenessS: 120,
      carbon: { gridGPerKWh: GRID_G_PER_KWH, residualMixGPerKWh: 600, greenShare: 0.25 },
      meters: { pv: ['dpv'], grid: [] },
      areas: [
        {
          id: 'a1',
          lines: [
            {
              id: 'l1',
              equipment: [
                {
                  id: 'ea',
                  type: 'oven',
                  ratedPowerW: 250_000,
                  devices: ['da'],
                  idle: { offBelowW: 2000, runAboveW: 60_000, afterS: 300 },
                },
                { id: 'eb', type: 'press', ratedPowerW: 250_000, devices: ['db'] },
              ],
            },
            { id: 'l2', equipment: [{ id: 'ec', type: 'fan', ratedPowerW: 250_000, devices: ['dc'] }] },
          ],
        },
      ],
    },
  ],
}
const plant = new PlantIndex(model)

const QUARTER_S = 900
// Thursday 2025-03-27 00:00 in Berlin (UTC+1) to Wednesday 2025-04-02 11:00 (UTC+2).
const START_S = Date.UTC(2025, 2, 26, 23) / 1000
const END_S = Date.UTC(2025, 3, 2, 9) / 1000

const hourFormat = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: 'numeric', hourCycle: 'h23' })
const localHour = (s: number) => Number(hourFormat.format(s * 1000))

/** One quarter hour [t, t + 900 s): each device's step, in Wh (and units for B's output). */
interface Quarter {
  t: number
  a: number
  aIdle: boolean
  b: number
  c: number
  pv: number
  output: number
}

const quarters: Quarter[] = []
for (let t = START_S; t < END_S; t += QUARTER_S) {
  const hour = localHour(t)
  const aIdle = hour >= 16 && hour < 18
  // Whole Wh divisible by 15, so that each minute's share is a whole mWh (spread.ts) and exact.
  quarters.push({
    t,
    a: aIdle ? 3_000 : 30_000, // 12 kW idle, 120 kW running
    aIdle,
    b: 22_500, // 90 kW
    c: hour >= 6 && hour < 22 ? 15_000 : 6_000, // 60 kW by day, 24 kW by night
    pv: hour >= 10 && hour < 14 ? 50_000 : hour >= 8 && hour < 18 ? 15_000 : 0, // 200 kW covers all at noon
    output: 45,
  })
}
/** B's counter is reset at this quarter's start (a decrease: the new value counts, §2). */
const RESET_AT = Date.UTC(2025, 2, 28, 23) / 1000

interface Message {
  topic: string
  payload: Buffer
  atS: number
}

function senml(id: string, records: object[]): Buffer {
  return Buffer.from(JSON.stringify([{ bn: `urn:dev:imei:${id}:`, ...records[0] }, ...records.slice(1)]))
}

/** Counter readings at every quarter boundary (the first at START_S), power of A at each start. */
function messages(): Message[] {
  const out: Message[] = []
  const up = (id: string) => deviceTopic(SITE, id, 'up')
  const counters = { a: 0, b: 0, c: 0, pv: 0, output: 1_000 }
  for (let k = 0; k <= quarters.length; k++) {
    const t = START_S + k * QUARTER_S
    const q = quarters[k]
    const aPower = q ? q.a * 4 : 120_000
    out.push({
      topic: up('da'),
      payload: senml('da', [
        { bt: t, n: 'energy', u: 'Wh', s: counters.a },
        { n: 'power', u: 'W', v: aPower },
      ]),
      atS: t,
    })
    out.push({
      topic: up('db'),
      payload: senml('db', [
        { bt: t, n: 'energy', u: 'Wh', s: counters.b },
        { n: 'output', u: 'count', s: counters.output },
      ]),
      atS: t,
    })
    out.push({ topic: up('dc'), payload: senml('dc', [{ bt: t, n: 'energy', u: 'Wh', s: counters.c }]), atS: t })
    out.push({ topic: up('dpv'), payload: senml('dpv', [{ bt: t, n: 'energy', u: 'Wh', s: counters.pv }]), atS: t })
    if (!q) break
    counters.a += q.a
    counters.b += q.b
    counters.c += q.c
    counters.pv += q.pv
    // At the reset the counter restarts from zero: the reading after it is this quarter's count.
    counters.output = q.t === RESET_AT ? q.output : counters.output + q.output
  }
  return out
}

/** Expected figures of a scope over quarters in [fromS, toS), by §7 from the steps above. */
interface Expected {
  energyWh: number
  co2G: number
  co2MarketG: number
  pvWh: number
  idleWh: number
  idleCo2G: number
  outputUnits: number
  peakKW: number
  peakAt: number | null
}

function scopeSteps(scope: string, q: Quarter): { energy: number; idle: number; output: number } {
  const parts = { a: q.a, b: q.b, c: q.c }
  const within = (eq: string) => eq === scope || eq.startsWith(`${scope}/`)
  let energy = 0
  if (within(A)) energy += parts.a
  if (within(B)) energy += parts.b
  if (within(C)) energy += parts.c
  return { energy, idle: within(A) && q.aIdle ? q.a : 0, output: within(B) ? q.output : 0 }
}

function expected(scope: string, fromS: number, toS: number): Expected {
  const e: Expected = {
    energyWh: 0,
    co2G: 0,
    co2MarketG: 0,
    pvWh: 0,
    idleWh: 0,
    idleCo2G: 0,
    outputUnits: 0,
    peakKW: 0,
    peakAt: null,
  }
  for (const q of quarters) {
    if (q.t < fromS || q.t >= toS) continue
    const site = q.a + q.b + q.c
    const importShare = Math.max(0, site - q.pv) / site
    const pvShare = Math.min(q.pv, site) / site
    const s = scopeSteps(scope, q)
    e.energyWh += s.energy
    e.co2G += (s.energy * importShare * GRID_G_PER_KWH) / 1000
    e.co2MarketG += (s.energy * importShare * MARKET_G_PER_KWH) / 1000
    e.pvWh += s.energy * pvShare
    e.idleWh += s.idle
    e.idleCo2G += (s.idle * importShare * GRID_G_PER_KWH) / 1000
    e.outputUnits += s.output
    // Demand of a complete quarter: its energy over a quarter hour (the last reading completes all).
    const kW = s.energy / 250
    if (kW > e.peakKW) {
      e.peakKW = kW
      e.peakAt = q.t * 1000
    }
  }
  return e
}

/** Relative 1e-6 (factors are computed per minute from whole-mWh pieces), absolute 1e-3. */
function expectClose(actual: unknown, wanted: number, label: string): void {
  expect(typeof actual, label).toBe('number')
  expect(Math.abs((actual as number) - wanted), `${label}: ${actual} vs ${wanted}`).toBeLessThanOrEqual(
    Math.max(1e-3, Math.abs(wanted) * 1e-6),
  )
}

type Json = Record<string, any>

function expectFigures(report: Json, want: Expected, label: string): void {
  for (const name of ['energyWh', 'co2G', 'co2MarketG', 'idleWh', 'idleCo2G', 'outputUnits', 'peakKW'] as const) {
    expectClose(report[name], want[name], `${label} ${name}`)
  }
  expectClose(report.pvShare, want.energyWh > 0 ? want.pvWh / want.energyWh : 0, `${label} pvShare`)
  expect(report.peakAt, `${label} peakAt`).toBe(want.peakAt)
  if (want.outputUnits > 0) expectClose(report.whPerUnit, want.energyWh / want.outputUnits, `${label} whPerUnit`)
  else expect(report.whPerUnit, `${label} whPerUnit`).toBeNull()
  expect(report.savedWh, `${label} savedWh`).toBe(0)
  expect(report.savedCo2G, `${label} savedCo2G`).toBe(0)
}

const ms = (y: number, mo: number, d: number, h: number) => Date.UTC(y, mo - 1, d, h)

describe('reports and the optional bucket figures, real processor and gateway', () => {
  let dir: string
  let aedes: Aedes
  let server: Server
  let bus: Bus
  let splitBus: Bus
  let journal: IngestJournal
  let store: HistoryStore
  let processor: Processor
  let gateway: Gateway
  let splitGateway: Gateway
  let base: string
  let splitBase: string
  let admin: string
  let lineToken: string
  let ws: WsTestClient
  const clock = { ms: START_S * 1000 }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-reports-'))
    aedes = await Aedes.createBroker()
    bus = createAedesBus(aedes)
    journal = await IngestJournal.open(join(dir, 'journal'), { now: () => clock.ms })
    store = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400 })
    processor = new Processor({
      plant,
      bus,
      logger: pino({ level: 'silent' }),
      journal,
      historyStore: store,
      now: () => clock.ms,
      publishIntervalMs: 20,
      // Readings of 2025: older than maxAgeS behind the wall clock (§7 --accept-old).
      pipeline: { acceptOld: true },
    })
    await processor.start()
    const tokens = await TokenStore.open(dir)
    admin = (await tokens.issue({ name: 'energy manager', role: 'viewer' })).token
    lineToken = (await tokens.issue({ name: 'line 1 screen', role: 'viewer', scopes: ['werk/a1/l1'] })).token
    const gatewayOf = async (gatewayBus: Bus) => {
      const g = await createGateway({
        plant,
        bus: gatewayBus,
        tokens,
        logger: pino({ level: 'silent' }),
        registry: new Registry(),
        isReady: () => true,
      })
      await g.start()
      return { g, base: `127.0.0.1:${await g.listen({ host: '127.0.0.1', port: 0 })}` }
    }
    ;({ g: gateway, base } = await gatewayOf(bus))
    // Split roles: a gateway on its own MQTT connection to the broker, asking the same processor.
    server = createServer((socket) => aedes.handle(socket))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    splitBus = await createMqttBus({
      url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
      clientId: `reports-gateway-${process.pid}`,
      clean: true,
    })
    ;({ g: splitGateway, base: splitBase } = await gatewayOf(splitBus))

    ws = await WsTestClient.connect(`ws://${base}/ws?token=${admin}`)
    ws.send({ op: 'subscribe', id: 'd', channel: 'buckets', scope: 'werk/a1/l1', step: '1d' })
    await ws.next((f) => f.type === 'subscribed')

    // Fed an hour of receipt time at a time, each sent and stored before the next (a running plant
    // publishes several times a second; fed at once, days would pass the 25-hour ring between rounds).
    const list = messages()
    for (let from = 0; from < list.length; ) {
      const end = list[from]!.atS + 3600
      let to = from
      while (to < list.length && list[to]!.atS < end) to++
      await Promise.all(
        list.slice(from, to).map(
          (message) =>
            new Promise<void>((resolve, reject) => {
              clock.ms = message.atS * 1000
              journal.append(message.topic, message.payload, (error) => (error ? reject(error) : resolve()))
            }),
        ),
      )
      await processor.historyWritten()
      from = to
    }
    expect(processor.stats.readingsRejected).toBe(0)
  }, 240_000)

  afterAll(async () => {
    await ws?.close()
    await splitGateway?.close()
    await gateway?.close()
    await processor?.stop()
    await journal?.close()
    await store?.close()
    await splitBus?.close()
    await bus?.close()
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  const get = (path: string, token = admin, accept = 'application/json', at = base) =>
    fetch(`http://${at}${path}`, { headers: { authorization: `Bearer ${token}`, accept } })
  const report = async (query: string, at = base) => {
    const response = await get(`/api/v1/reports?${query}`, admin, 'application/json', at)
    expect(response.status, query).toBe(200)
    return (await response.json()) as Json
  }

  it('bucket frames and GET /api/v1/energy carry pvWh, idleCo2G and outputUnits as the readings give them', async () => {
    // Friday 2025-03-28 in Berlin: closed long ago, so its 1d bucket went out on /ws and into the store.
    const dayFrom = ms(2025, 3, 27, 23)
    const want = expected('werk/a1/l1', dayFrom / 1000, ms(2025, 3, 28, 23) / 1000)
    const frame = await ws.next((f) => f.type === 'bucket' && f.t === dayFrom, 10_000)
    for (const name of ['energyWh', 'co2G', 'co2MarketG', 'pvWh', 'idleWh', 'idleCo2G', 'outputUnits'] as const) {
      expectClose(frame[name], want[name], `frame ${name}`)
    }
    const rows = (await (
      await get(`/api/v1/energy?scope=werk/a1/l1&step=1d&from=${dayFrom}&to=${dayFrom + 1}`)
    ).json()) as Json[]
    expect(rows).toHaveLength(1)
    for (const name of ['energyWh', 'co2G', 'co2MarketG', 'pvWh', 'idleWh', 'idleCo2G', 'outputUnits'] as const) {
      expectClose(rows[0]![name], want[name], `energy ${name}`)
    }
    // Line 2 reports no output: its buckets carry no outputUnits (present where they apply, §5).
    const l2 = (await (
      await get(`/api/v1/energy?scope=werk/a1/l2&step=1d&from=${dayFrom}&to=${dayFrom + 1}`)
    ).json()) as Json[]
    expect(l2[0]!.outputUnits).toBeUndefined()
    expect(l2[0]!.pvWh).toBeGreaterThan(0)
  })

  it('answers every field of the contract, at every level (the response schema drops none)', async () => {
    const figures = [
      'energyWh',
      'co2G',
      'co2MarketG',
      'pvShare',
      'idleWh',
      'idleCo2G',
      'peakKW',
      'peakAt',
      'outputUnits',
      'whPerUnit',
      'savedWh',
      'savedCo2G',
    ]
    const r = await report(`scope=werk/a1&period=week&at=${ms(2025, 3, 28, 12)}`)
    expect(Object.keys(r).sort()).toEqual(['scope', 'period', 'from', 'to', ...figures, 'previous', 'children'].sort())
    expect(Object.keys(r.previous).sort()).toEqual(['from', 'to', ...figures].sort())
    for (const child of r.children as Json[]) expect(Object.keys(child).sort()).toEqual(['scope', ...figures].sort())
    // Without output (line 2) whPerUnit is null, not dropped; with it, a number.
    const l2 = (r.children as Json[]).find((child) => child.scope === 'werk/a1/l2')!
    expect(l2.whPerUnit).toBeNull()
    expect(l2.outputUnits).toBe(0)
    expect(typeof r.whPerUnit).toBe('number')
  })

  it('a day: the DST change day has 23 hours, and the previous day is the Saturday', async () => {
    const r = await report(`scope=werk&period=day&at=2025-03-30T12:00:00%2B02:00`)
    expect(r.scope).toBe('werk')
    expect(r.period).toBe('day')
    expect(r.from).toBe(ms(2025, 3, 29, 23))
    expect(r.to).toBe(ms(2025, 3, 30, 22))
    expectFigures(r, expected('werk', r.from / 1000, r.to / 1000), 'day')
    expect(r.previous.from).toBe(ms(2025, 3, 28, 23))
    expect(r.previous.to).toBe(r.from)
    expectFigures(r.previous, expected('werk', r.previous.from / 1000, r.previous.to / 1000), 'previous day')
  })

  it('a week runs Monday to Monday; the previous week holds the days before the Monday', async () => {
    // Tuesday 2025-04-01: the week of Monday 2025-03-31, still running (fed up to Wednesday 11:00).
    const r = await report(`scope=werk/a1&period=week&at=${ms(2025, 4, 1, 10)}`)
    expect(r.from).toBe(ms(2025, 3, 30, 22))
    expect(r.to).toBe(ms(2025, 4, 6, 22))
    expectFigures(r, expected('werk/a1', r.from / 1000, r.to / 1000), 'week')
    expect(r.previous.from).toBe(ms(2025, 3, 23, 23))
    expectFigures(r.previous, expected('werk/a1', r.previous.from / 1000, r.previous.to / 1000), 'previous week')
  })

  it('a month and a year; the previous year is empty', async () => {
    const march = await report(`scope=werk/a1/l1&period=month&at=${ms(2025, 3, 15, 12)}`)
    expect(march.from).toBe(ms(2025, 2, 28, 23))
    expect(march.to).toBe(ms(2025, 3, 31, 22))
    expectFigures(march, expected('werk/a1/l1', march.from / 1000, march.to / 1000), 'march')
    const april = await report(`scope=werk/a1/l1&period=month&at=2025-04-02T08:00:00Z`)
    expectFigures(april, expected('werk/a1/l1', april.from / 1000, april.to / 1000), 'april')
    expectFigures(april.previous, expected('werk/a1/l1', march.from / 1000, march.to / 1000), 'april previous')
    const year = await report(`scope=werk/a1/l1&period=year&at=${ms(2025, 6, 1, 0)}`)
    expect(year.from).toBe(ms(2024, 12, 31, 23))
    expect(year.to).toBe(ms(2025, 12, 31, 23))
    expectFigures(year, expected('werk/a1/l1', year.from / 1000, year.to / 1000), 'year')
    expectFigures(year.previous, expected('werk/a1/l1', 0, 0), 'previous year')
  })

  it('children are the direct children, each with its own figures, and they sum to the parent', async () => {
    for (const [scope, children] of [
      ['werk', ['werk/a1']],
      ['werk/a1', ['werk/a1/l1', 'werk/a1/l2']],
      ['werk/a1/l1', [A, B]],
    ] as const) {
      const r = await report(`scope=${scope}&period=year&at=${ms(2025, 3, 30, 12)}`)
      expect(r.children.map((c: Json) => c.scope)).toEqual(children)
      for (const child of r.children as Json[]) {
        expectFigures(child, expected(child.scope, r.from / 1000, r.to / 1000), child.scope)
      }
      for (const name of ['energyWh', 'co2G', 'co2MarketG', 'idleWh', 'idleCo2G', 'outputUnits', 'savedWh']) {
        const sum = (r.children as Json[]).reduce((total, child) => total + child[name], 0)
        expectClose(sum, r[name], `${scope} Σ children ${name}`)
      }
    }
  })

  it('the split-roles gateway answers the same report', async () => {
    const query = `scope=werk/a1&period=month&at=${ms(2025, 3, 30, 12)}`
    expect(await report(query, splitBase)).toEqual(await report(query))
  })

  it('Accept: text/csv gives the scope and its children, a header row, the same numbers', async () => {
    const json = await report(`scope=werk/a1&period=week&at=${ms(2025, 3, 28, 12)}`)
    const response = await get(`/api/v1/reports?scope=werk/a1&period=week&at=${ms(2025, 3, 28, 12)}`, admin, 'text/csv')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/)
    expect(response.headers.get('content-disposition')).toBe(
      'attachment; filename="plantwatt-report-werk_a1-week-2025-03-24.csv"',
    )
    const rows = parse(await response.text(), { columns: true }) as Record<string, string>[]
    expect(rows.map((row) => row.scope)).toEqual(['werk/a1', 'werk/a1/l1', 'werk/a1/l2'])
    const sources = [json, ...(json.children as Json[])]
    rows.forEach((row, k) => {
      const source = sources[k]!
      expect(row.period).toBe('week')
      expect(Date.parse(row.from!)).toBe(json.from)
      expect(Date.parse(row.to!)).toBe(json.to)
      for (const name of ['energyWh', 'co2G', 'co2MarketG', 'pvShare', 'idleWh', 'idleCo2G', 'peakKW', 'outputUnits']) {
        expect(Number(row[name]), `${row.scope} ${name}`).toBe(source[name])
      }
      expect(Date.parse(row.peakAt!)).toBe(source.peakAt)
      expect(row.whPerUnit === '' ? null : Number(row.whPerUnit)).toBe(source.whPerUnit)
      expect(Number(row.savedWh)).toBe(source.savedWh)
    })
  })

  it('refuses a scoped token outside its scopes, unknown scopes, and bad period or at', async () => {
    const inside = await get(`/api/v1/reports?scope=werk/a1/l1&period=day&at=${ms(2025, 3, 28, 12)}`, lineToken)
    expect(inside.status).toBe(200)
    const outside = await get(`/api/v1/reports?scope=werk/a1&period=day`, lineToken)
    expect(outside.status).toBe(403)
    expect(((await outside.json()) as Json).error.code).toBe('forbidden')
    const unknown = await get(`/api/v1/reports?scope=werk/nowhere&period=day`)
    expect(unknown.status).toBe(404)
    for (const query of [
      'scope=werk&period=fortnight',
      'scope=werk&period=day&at=yesterday',
      'period=day',
      'scope=werk',
    ]) {
      const response = await get(`/api/v1/reports?${query}`)
      expect(response.status, query).toBe(400)
      const body = (await response.json()) as Json
      expect(typeof body.error.code, query).toBe('string')
      expect(typeof body.error.message, query).toBe('string')
    }
    const unauthenticated = await fetch(`http://${base}/api/v1/reports?scope=werk&period=day`)
    expect(unauthenticated.status).toBe(401)
  })

  it('is in the OpenAPI document', async () => {
    const doc = (await (await fetch(`http://${base}/api/v1/openapi.json`)).json()) as Json
    const operation = doc.paths['/api/v1/reports']?.get
    expect(operation).toBeDefined()
    const content = operation.responses['200'].content
    expect(Object.keys(content).sort()).toEqual(['application/json', 'text/csv'])
    const properties = Object.keys(content['application/json'].schema.properties)
    for (const name of ['scope', 'period', 'from', 'to', 'pvShare', 'whPerUnit', 'previous', 'children']) {
      expect(properties).toContain(name)
    }
  })
})
