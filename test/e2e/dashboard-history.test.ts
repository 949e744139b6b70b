import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword, type PlantModel } from '@plantwatt/contract'
import mqtt, { type MqttClient } from 'mqtt'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'

// Issue 17, the dashboard's history view: four days of a small plant go through the real pipeline
// (`plantwatt up`, real MQTT devices publishing batches of power readings with their own times,
// as NB-IoT devices flushing a buffer do), then Debian's Chromium opens the dashboard. The test
// checks the page against the history API itself: the bars of a day and a week are the buckets
// GET /api/v1/energy answers for the range the page shows, drilling down to an equipment makes
// the charts that equipment's, the URL hash survives a reload, the month's 15-minute peak is the
// highest quarter hour of the month, and the downloaded report is GET /api/v1/reports as CSV.
// Every wait is on a DOM condition or a polled API answer, never a sleep.

const SECRET = 'dashboard-history-device-secret-0123456789'
const ADMIN = 'dashboard-history-admin-token-0123456789'
const CHROMIUM = process.env.PLANTWATT_CHROMIUM ?? '/usr/bin/chromium'
const SITE = 'ningde'
const TZ = 'Asia/Shanghai'
const HISTORY_DAYS = 4
const READING_S = 300

const MACHINES = [
  { area: 'cells', line: 'coating-1', id: 'oven-1', ratedW: 250_000, baseW: 182_000 },
  { area: 'cells', line: 'coating-1', id: 'oven-2', ratedW: 250_000, baseW: 171_000 },
  { area: 'cells', line: 'calendering-1', id: 'press-1', ratedW: 120_000, baseW: 86_000 },
  { area: 'utilities', line: 'cooling', id: 'chiller-1', ratedW: 200_000, baseW: 141_000 },
]

function plantModel(): PlantModel {
  const areas: PlantModel['sites'][number]['areas'] = []
  for (const m of MACHINES) {
    if (!areas.some((a) => a.id === m.area)) areas.push({ id: m.area, name: `Area ${m.area}`, lines: [] })
    const area = areas.find((a) => a.id === m.area)!
    if (!area.lines.some((l) => l.id === m.line)) area.lines.push({ id: m.line, name: `Line ${m.line}`, equipment: [] })
    const line = area.lines.find((l) => l.id === m.line)!
    line.equipment.push({
      id: m.id,
      name: `Machine ${m.id}`,
      type: 'machine',
      ratedPowerW: m.ratedW,
      devices: [`dev-${m.id}`],
      idle: { offBelowW: m.ratedW * 0.01, runAboveW: m.ratedW * 0.25, afterS: 600 },
    })
  }
  return {
    version: 1,
    sites: [
      {
        id: SITE,
        name: 'Ningde pack plant',
        timezone: TZ,
        latenessS: 60,
        carbon: { gridGPerKWh: 600, residualMixGPerKWh: 680, greenShare: 0.266 },
        meters: { pv: [], grid: [] },
        areas,
      },
    ],
  }
}

/** The machine's power at `timeS`: a daily shape, and the second oven idle from 02:00 to 05:00 UTC. */
function powerAt(index: number, timeS: number): number {
  const machine = MACHINES[index]!
  const hourUtc = (timeS / 3600) % 24
  if (machine.id === 'oven-2' && hourUtc >= 2 && hourUtc < 5) return 24_000 + 500 * Math.sin(timeS / 700)
  const shape = 1 + 0.15 * Math.sin((2 * Math.PI * (timeS / 3600 + index * 3)) / 24) + 0.03 * Math.sin(timeS / 917)
  return Math.round(machine.baseW * shape)
}

/** Polls `check` (an API answer, not a timer) until it holds; throws after `ms`. */
async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** YYYY-MM-DD of an instant in the site's zone. */
const localDate = (ms: number) => new Intl.DateTimeFormat('en-CA', { timeZone: TZ }).format(ms)

interface Row {
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
}

describe('the dashboard history view', () => {
  let system: RunningPlantwatt
  let browser: Browser
  let base: string
  const clients: MqttClient[] = []
  const nowS = Math.floor(Date.now() / 1000)
  const endS = Math.floor((nowS - 60) / READING_S) * READING_S
  const startS = endS - HISTORY_DAYS * 86_400

  const api = async <T>(path: string, query: Record<string, string | number>): Promise<T> => {
    const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)] as [string, string]))
    const res = await fetch(`${base}${path}?${search}`, { headers: { authorization: `Bearer ${ADMIN}` } })
    expect(res.status, `${path}?${search}`).toBe(200)
    return (await res.json()) as T
  }
  const energy = (scope: string, step: string, from: number, to: number) =>
    api<Row[]>('/api/v1/energy', { scope, step, from, to })

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-dashboard-history-'))
    const plantFile = join(dir, 'plant.json')
    await writeFile(plantFile, JSON.stringify(plantModel()))
    system = await startPlantwatt(['--plant', plantFile], {
      PLANTWATT_DEVICE_SECRET: SECRET,
      PLANTWATT_ADMIN_TOKEN: ADMIN,
    })
    base = `http://127.0.0.1:${system.httpPort}`
    for (const machine of MACHINES) {
      const id = `dev-${machine.id}`
      clients.push(
        await mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
          clientId: id,
          username: id,
          password: deriveDevicePassword(SECRET, id),
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
      )
    }
    // An hour of readings per device and message, oldest first, through the broker at QoS 1.
    for (let hourS = startS; hourS <= endS; hourS += 3600) {
      await Promise.all(
        clients.map((client, index) => {
          const records = []
          for (let t = hourS; t < hourS + 3600 && t <= endS; t += READING_S) {
            records.push({ n: 'power', u: 'W', t: t - hourS, v: powerAt(index, t) })
          }
          const id = `dev-${MACHINES[index]!.id}`
          return client.publishAsync(
            `sites/${SITE}/devices/${id}/up`,
            JSON.stringify([{ bn: `urn:dev:${id}:`, bt: hourS, ...records[0] }, ...records.slice(1)]),
            { qos: 1 },
          )
        }),
      )
    }
    // Every complete hour of the history is in the store before the browser looks.
    const lastHour = Math.floor(endS / 3600) * 3600 - 3600
    const hours = (lastHour - Math.ceil(startS / 3600) * 3600) / 3600
    // Every hour of every machine has its energy, and the oven's idle hours their idle energy.
    // With `up --workers`, one worker's devices can reach the processor more than a day behind the
    // other's while four days arrive in seconds: their hours older than the processor's 25-hour
    // ring are revised once the next checkpoint holds them (every 60 s), the rest once the site
    // clock has stood still for a second. A few seconds to a minute; the bound is for a CI machine
    // running other suites beside it.
    await until(async () => {
      for (const machine of MACHINES) {
        const rows = await energy(
          `${SITE}/${machine.area}/${machine.line}/${machine.id}`,
          '1h',
          startS * 1000,
          lastHour * 1000,
        )
        if (rows.length < hours || rows.some((row) => row.t >= startS * 1000 && !(row.energyWh > 0))) return false
        if (machine.id === 'oven-2') {
          const idleHours = rows.filter((row) => {
            const hourUtc = new Date(row.t).getUTCHours()
            return hourUtc >= 2 && hourUtc < 4
          })
          if (idleHours.some((row) => !(row.idleWh > 0))) return false
        }
      }
      return true
    }, 150_000)
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
  }, 240_000)

  afterAll(async () => {
    await browser?.close()
    await Promise.all(clients.map((client) => client.endAsync()))
    expect(await system?.stop()).toBe(0)
  })

  async function open(hash: string, token = ADMIN): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1600, height: 1400 }, locale: 'en-US' })
    const page = await context.newPage()
    page.on('pageerror', (error) => {
      throw error
    })
    await page.goto(`${base}/${hash}`)
    await page.fill('#token-input', token)
    await page.click('#login-submit')
    await page.locator('#app').waitFor({ state: 'visible' })
    return page
  }

  /** The view once loaded: its scope, range and bounds as the page states them. */
  async function shown(page: Page, scope: string, range: string) {
    await page.locator(`#history[data-state="ready"][data-scope="${scope}"][data-range="${range}"]`).waitFor()
    const data = await page.locator('#history').evaluate((node: any) => ({ ...node.dataset }) as Record<string, string>)
    return { from: Number(data.from), to: Number(data.to), step: data.step! }
  }

  /** The energy bars: [bucket start, energyWh] as the page drew them. */
  const bars = (page: Page, series: string) =>
    page
      .locator(`#history-energy rect.bar.${series}, #history-co2 rect.bar.${series}`)
      .evaluateAll((rects) =>
        rects.map((r) => [Number(r.getAttribute('data-t')), Number(r.getAttribute('data-value'))]),
      )

  /** The page's bars equal the history API's buckets for the range it shows, figure by figure. */
  async function expectBarsFromApi(page: Page, scope: string, range: { from: number; to: number; step: string }) {
    const rows = await energy(scope, range.step, range.from, range.to)
    expect(await bars(page, 'energy')).toEqual(rows.map((row) => [row.t, row.energyWh]))
    expect(await bars(page, 'idle')).toEqual(rows.map((row) => [row.t, row.idleWh]))
    expect(await bars(page, 'co2')).toEqual(rows.map((row) => [row.t, row.co2G]))
    expect(await bars(page, 'co2-market')).toEqual(rows.map((row) => [row.t, row.co2MarketG]))
    return rows
  }

  it('shows a day as hourly buckets and a week as daily ones, from the history API, with previous and next', async () => {
    // Two days back: a whole local day of history, in a week with at least two days of it.
    const day = localDate((nowS - 2 * 86_400) * 1000)
    const page = await open(`#range=day&at=${day}&scope=${SITE}`)
    const dayRange = await shown(page, SITE, 'day')
    expect(dayRange.step).toBe('1h')
    expect(localDate(dayRange.from)).toBe(day)
    expect(dayRange.to - dayRange.from).toBe(86_400_000)
    const dayRows = await expectBarsFromApi(page, SITE, dayRange)
    expect(dayRows).toHaveLength(24)
    // The oven's idle hours are in the day's idle energy.
    expect(dayRows.some((row) => row.idleWh > 0)).toBe(true)
    const total = dayRows.reduce((sum, row) => sum + row.energyWh, 0)
    expect(Number(await page.locator('#history-total-energy').getAttribute('data-value'))).toBeCloseTo(total, 6)

    await page.click('#history button[data-range="week"]')
    const week = await shown(page, SITE, 'week')
    expect(week.step).toBe('1d')
    // Monday to Monday, local to the site, holding the day shown before.
    expect(new Intl.DateTimeFormat('en-US', { timeZone: TZ, weekday: 'short' }).format(week.from)).toBe('Mon')
    expect(week.from).toBeLessThanOrEqual(dayRange.from)
    expect(week.to).toBeGreaterThanOrEqual(dayRange.to)
    expect((await expectBarsFromApi(page, SITE, week)).length).toBeGreaterThanOrEqual(2)

    await page.click('#history-prev')
    await page.locator(`#history[data-state="ready"][data-from="${week.from - 7 * 86_400_000}"]`).waitFor()
    await expectBarsFromApi(page, SITE, await shown(page, SITE, 'week'))
    await page.click('#history-next')
    await page.locator(`#history[data-state="ready"][data-from="${week.from}"]`).waitFor()
    await page.context().close()
  })

  it('drills down from the site to an equipment and back, the charts following, and keeps it across a reload', async () => {
    const day = localDate((nowS - 2 * 86_400) * 1000)
    const page = await open(`#range=day&at=${day}`)
    await shown(page, SITE, 'day')
    // The site's children: its areas, each with its share of the day.
    expect(
      await page.locator('#history-children tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-scope'))),
    ).toEqual([`${SITE}/cells`, `${SITE}/utilities`])
    for (const scope of [`${SITE}/cells`, `${SITE}/cells/coating-1`, `${SITE}/cells/coating-1/oven-2`]) {
      await page.click(`#history-children tr[data-scope="${scope}"] button.drill`)
      await expectBarsFromApi(page, scope, await shown(page, scope, 'day'))
    }
    // An equipment has no children; the breadcrumb names every level above it.
    expect(await page.locator('#history-children-table').isHidden()).toBe(true)
    expect(await page.locator('#history-crumbs .crumb').allTextContents()).toEqual([
      'Ningde pack plant',
      'Area cells',
      'Line coating-1',
      'Machine oven-2',
    ])
    const equipmentRows = await energy(`${SITE}/cells/coating-1/oven-2`, '1h', ...(await range(page)))
    expect(equipmentRows.some((row) => row.idleWh > 0)).toBe(true)

    await page.click('#history button[data-range="month"]')
    const month = await shown(page, `${SITE}/cells/coating-1/oven-2`, 'month')
    expect(page.url()).toContain('range=month')
    expect(page.url()).toContain(`scope=${SITE}/cells/coating-1/oven-2`)
    await page.reload()
    await page.locator('#app').waitFor({ state: 'visible' })
    expect(await shown(page, `${SITE}/cells/coating-1/oven-2`, 'month')).toEqual(month)
    await expectBarsFromApi(page, `${SITE}/cells/coating-1/oven-2`, month)

    // Back up by the breadcrumb: the line, then the site.
    await page.click(`#history-crumbs button[data-scope="${SITE}/cells/coating-1"]`)
    await expectBarsFromApi(page, `${SITE}/cells/coating-1`, await shown(page, `${SITE}/cells/coating-1`, 'month'))
    await page.click(`#history-crumbs button[data-scope="${SITE}"]`)
    await shown(page, SITE, 'month')
    await page.context().close()
  })

  it("draws the 15-minute demand with the month's peak, the highest quarter hour of the month", async () => {
    const day = localDate((nowS - 2 * 86_400) * 1000)
    const page = await open(`#range=day&at=${day}&scope=${SITE}/cells`)
    const dayRange = await shown(page, `${SITE}/cells`, 'day')
    const points = Number(await page.locator('#history-demand path.series.demand').getAttribute('data-points'))
    const quarterHours = await energy(`${SITE}/cells`, '15m', dayRange.from, dayRange.to)
    expect(points).toBe(quarterHours.length)
    expect(points).toBe(96)
    // The month holding the day, in the site's zone.
    const [y, m] = day.split('-').map(Number) as [number, number]
    const monthFrom = Date.parse(`${y}-${String(m).padStart(2, '0')}-01T00:00:00+08:00`)
    const monthTo = Date.parse(`${m === 12 ? y + 1 : y}-${String((m % 12) + 1).padStart(2, '0')}-01T00:00:00+08:00`)
    const monthRows = await energy(`${SITE}/cells`, '15m', monthFrom, monthTo)
    const peak = monthRows.reduce((best, row) => (row.energyWh > best.energyWh ? row : best))
    const marks = page.locator('#history-demand line.month-peak')
    expect(await marks.count()).toBe(1)
    expect(Number(await marks.getAttribute('data-kw'))).toBeCloseTo((peak.energyWh * 4) / 1000, 9)
    expect(Number(await marks.getAttribute('data-t'))).toBe(peak.t)
    await page.context().close()
  })

  it("downloads the selected scope and period's report as CSV, the rows those of the report API", async () => {
    const day = localDate((nowS - 2 * 86_400) * 1000)
    const page = await open(`#range=month&at=${day}&scope=${SITE}/cells/coating-1`)
    const month = await shown(page, `${SITE}/cells/coating-1`, 'month')
    // The download, or the page's own message saying why there is none (a clearer failure).
    const refused = page
      .locator('#report-note:not(:empty)')
      .waitFor()
      .then(async () => {
        throw new Error(`no download: ${await page.locator('#report-note').textContent()}`)
      })
    const [download] = await Promise.all([
      Promise.race([page.waitForEvent('download'), refused]),
      page.click('#report-download'),
    ])
    refused.catch(() => {})
    expect(download.suggestedFilename()).toBe(
      `plantwatt-report-${SITE}_cells_coating-1-month-${localDate(month.from)}.csv`,
    )
    const csv = (await readFile((await download.path())!, 'utf8')).trim().split(/\r?\n/)
    const report = await api<Record<string, unknown> & { children: Record<string, unknown>[] }>('/api/v1/reports', {
      scope: `${SITE}/cells/coating-1`,
      period: 'month',
      at: month.from,
    })
    // Plain CSV of scopes and numbers: no cell holds a comma; a quoted one is unquoted.
    const cells = (line: string) => line.split(',').map((cell) => cell.replace(/^"(.*)"$/, '$1'))
    // The figures only the report has, beside the period's totals: no PV and no output counter here.
    expect(report.whPerUnit).toBeNull()
    expect(await page.locator('#history-total-per-unit .value').textContent()).toBe('—')
    expect(report.pvShare).toBe(0)
    expect(await page.locator('#history-total-pv .value').textContent()).toBe('0.0 %')
    const header = cells(csv[0]!)
    expect(header[0]).toBe('scope')
    const rows = csv.slice(1).map((line) => Object.fromEntries(cells(line).map((cell, i) => [header[i], cell])))
    // One row per scope: the line, then its equipment.
    expect(rows.map((row) => row.scope)).toEqual([report.scope, ...report.children.map((child) => child.scope)])
    for (const [i, source] of [report, ...report.children].entries()) {
      for (const column of ['energyWh', 'co2G', 'co2MarketG', 'idleWh']) {
        expect(Number(rows[i]![column]), `${source.scope} ${column}`).toBeCloseTo(source[column] as number, 6)
      }
    }
    await page.context().close()
  })

  it('takes a token scoped to a line down to that line (its site and area are not its to see)', async () => {
    const issued = await fetch(`${base}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'coating screen', role: 'viewer', scopes: [`${SITE}/cells/coating-1`] }),
    })
    expect(issued.status).toBe(201)
    const token = ((await issued.json()) as { token: string }).token
    const day = localDate((nowS - 2 * 86_400) * 1000)
    const page = await open(`#range=day&at=${day}`, token)
    const line = `${SITE}/cells/coating-1`
    await expectBarsFromApi(page, line, await shown(page, line, 'day'))
    expect(page.url()).toContain(`scope=${line}`)
    await page.context().close()
  })

  async function range(page: Page): Promise<[number, number]> {
    const data = await page.locator('#history').evaluate((node: any) => ({ ...node.dataset }) as Record<string, string>)
    return [Number(data.from), Number(data.to)]
  }
})
