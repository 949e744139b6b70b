// `pnpm bench:report`: GET /api/v1/reports' work for a year of the site (CONTRACT.md §6), as the
// processor answers the `report` query: the year and the year before of the site, and the year of
// each direct child (the areas), from a year of daily buckets and a year of 15-minute demand
// intervals per scope in the embedded history store.
//
// The store is filled here like `pnpm bench:history-store` fills its year (the scope tree of
// `plantwatt plant generate --devices 40000`, the same row shapes), but only with what a year
// report reads, plus 1d rows for every FRACTION-th other scope so that the tree is not trivially
// small; or, with HS_DIR pointing at a store that bench kept (HS_KEEP=1), that store is used as is
// (it holds no year of demand: phase 2 writes none).
//
// Timed: the whole answer (ReportQuery.answer), warm (repeated) and after the store is reopened
// (cold for lmdb, warm for the OS page cache: this bench does not evict the file).
//
// Environment: DEVICES (default 40000), FRACTION (default 10), RUNS (default 200), HS_DIR.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Accounting, LocalCalendar, periodBounds, previousBounds } from '@plantwatt/accounting'
import type { PlantModel } from '@plantwatt/contract'
import { HistoryStore, type StoredBucket } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { HistoryStoreSink } from '../src/history-sink.ts'
import { ReportQuery } from '../src/report-query.ts'

const DEVICES = Number(process.env.DEVICES ?? 40_000)
const FRACTION = Number(process.env.FRACTION ?? 10)
const RUNS = Number(process.env.RUNS ?? 200)
const ROOT = join(import.meta.dirname, '../../..')
const given = process.env.HS_DIR
const dir = given ?? mkdtempSync(join(tmpdir(), 'plantwatt-report-bench-'))
const DAY = 86_400_000
const QUARTER = 900_000

function log(what: string, figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ what, ...figures }))
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(3)
}

function day(scope: string, t: number, seed: number): StoredBucket {
  const energyWh = 4000 + Math.round((seed % 9973) * 17.3) / 1000
  return {
    scope,
    step: '1d',
    t,
    revision: 0,
    energyWh,
    co2G: energyWh * 0.4712345,
    co2MarketG: energyWh * 0.3719,
    idleWh: energyWh / 5,
    peakW: 1000 + (seed % 50_000),
    pvWh: energyWh * 0.17,
    idleCo2G: energyWh * 0.09,
    outputUnits: seed % 400,
  }
}

async function main(): Promise<void> {
  const model = JSON.parse(
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'services/cli/src/main.ts'), 'plant', 'generate', '--devices', String(DEVICES)],
      { cwd: ROOT, maxBuffer: 1 << 30, encoding: 'utf8' },
    ),
  ) as PlantModel
  const plant = new PlantIndex(model)
  const site = plant.sites.values().next().value!
  const areas = site.node.children.map((child) => child.scope)
  // The report asks for the (local) year holding `at`; the store holds the year before and this
  // one up to `at`, as a running plant's would.
  const at = Date.UTC(2026, 5, 1)
  const calendar = new LocalCalendar(site.spec.timezone)
  const year = periodBounds(calendar, 'year', at / 60_000)
  const yearStart = previousBounds(calendar, 'year', year).from * 60_000
  const open = () => new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400 })
  let store = open()
  // A store given by HS_DIR is used as it is, unless it holds no year of daily rows for the site.
  const held = await store.range(site.node.scope, '1d', yearStart, at, 400)
  if (given === undefined || held.length === 0) {
    const t0 = performance.now()
    const read = [site.node.scope, ...areas]
    const others = site.scopes
      .map((node) => node.scope)
      .filter((scope, i) => i % FRACTION === 0 && !read.includes(scope))
    let rows = 0
    for (const scope of [...read, ...others]) {
      const days: StoredBucket[] = []
      for (let t = yearStart, k = 0; t < at; t += DAY, k++) days.push(day(scope, t, k * 31 + scope.length))
      await store.write(days)
      rows += days.length
      if (!read.includes(scope)) continue
      const demand = []
      for (let t = yearStart, k = 0; t < at; t += QUARTER, k++) {
        demand.push({ scope, t, kW: 100 + ((k * 7919) % 100_000) / 100, revision: 0 })
      }
      await store.writeDemand(demand)
      rows += demand.length
    }
    log('fill', {
      scopes: read.length + others.length,
      areas: areas.length,
      rows,
      s: +((performance.now() - t0) / 1000).toFixed(1),
    })
  }
  const logger = pino({ level: 'silent' })
  const query = () => {
    const sink = new HistoryStoreSink({ store, logger, reviseAbove: () => false, publish: () => {} })
    // An engine that holds nothing: every figure comes from the store, as for a past year.
    return new ReportQuery(plant, new Accounting(plant), sink, (row) => row, Date.now)
  }
  let reports = query()
  const timed = async () => {
    const t = performance.now()
    const answer = await reports.answer({ scope: site.node.scope, period: 'year', atMs: at })
    const ms = performance.now() - t
    if (answer.children.length !== areas.length || !(answer.energyWh > 0)) throw new Error('unexpected answer')
    return ms
  }
  const reopened: number[] = []
  for (let i = 0; i < 10; i++) {
    await store.close()
    store = open()
    reports = query()
    reopened.push(await timed())
  }
  const warm: number[] = []
  for (let i = 0; i < RUNS; i++) warm.push(await timed())
  // The parts: the year's daily rows of the site, and its year of demand intervals.
  const part = async (q: () => Promise<unknown>) => {
    const times: number[] = []
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now()
      await q()
      times.push(performance.now() - t)
    }
    return { p50: pct(times, 50), p99: pct(times, 99) }
  }
  const site1d = await part(() => store.range(site.node.scope, '1d', year.from * 60_000, year.to * 60_000, 100_001))
  const sitePeak = await part(() => store.peakDemand(site.node.scope, year.from * 60_000, year.to * 60_000))
  log('parts, one scope and period, warm', { dailyRowsMs: site1d, demandPeakMs: sitePeak })
  log('year report of the site', {
    site: site.node.scope,
    children: areas.length,
    from: new Date(yearStart).toISOString(),
    at: new Date(at).toISOString(),
    dailyRowsPerScope: Math.round((at - yearStart) / DAY),
    demandRowsPerScope: Math.round((at - yearStart) / QUARTER),
    reopenedMs: { p50: pct(reopened, 50), max: pct(reopened, 100) },
    warmMs: { p50: pct(warm, 50), p99: pct(warm, 99), max: pct(warm, 100), n: warm.length },
  })
  await store.close()
  if (given === undefined && process.env.HS_KEEP !== '1') rmSync(dir, { recursive: true, force: true })
}

await main()
