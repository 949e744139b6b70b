// `pnpm bench:history-store`: the history store on the 40,000-device plant's scopes (issue 13).
//
// Phase 1, as the processor writes: every simulated minute one batch of a 1m row per scope, the
// 15m/1h/1d rows (and 15m demand) at their boundaries, and 1 % of the previous minute's rows revised.
// Gives the write cost per bucket, the batch latency, the event-loop delay and the disk per row of
// each tier. A year of it cannot run here (525,600 batches); PHASE1_MINUTES of it do.
// Phase 2, the year: a year of 15m, 1h and 1d rows for every FRACTION-th scope (the queried line
// and site included), through the same `write`, one batch per scope and month (a year of the whole
// plant is 1.2 billion rows, about 60 GB: more disk and time than this machine has; the numbers
// are extrapolated from the fraction, see docs/benchmarks.md).
// Then the two queries of issue 13: a month of 15m for one line (2,880 rows) and a year of 1d for
// the site (365 rows), warm (repeated) and cold (pages evicted from the OS cache with
// posix_fadvise DONTNEED through python3, then the store reopened), and warm again while a
// minute's batch is being written.
//
// Environment: HS_DIR (default a temp dir, deleted at the end unless HS_KEEP=1),
// PHASE1_MINUTES (default 240), FRACTION (default 10), DEVICES (default 40000), PHASES=1 (phase 1
// only).

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BucketStep, PlantModel } from '@plantwatt/contract'
// Bench code reaching the runtime package's monitor by path (the store does not depend on it).
import { startLoopDelayMonitor } from '../../runtime/src/loop-delay.ts'
import { HistoryStore, type StoredBucket } from '../src/index.ts'

const DEVICES = Number(process.env.DEVICES ?? 40_000)
const PHASE1_MINUTES = Number(process.env.PHASE1_MINUTES ?? 240)
const FRACTION = Number(process.env.FRACTION ?? 10)
const ROOT = join(import.meta.dirname, '../../..')
const dir = process.env.HS_DIR ?? mkdtempSync(join(tmpdir(), 'plantwatt-hs-bench-'))
const MIN = 60_000
const DAY = 86_400_000
/** The year ends at the start of phase 1; UTC boundaries stand in for the site's local ones. */
const YEAR_END = Date.UTC(2026, 11, 1)
const YEAR_START = YEAR_END - 365 * DAY

function log(what: string, figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ what, ...figures }))
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(3)
}

function scopesOf(plant: PlantModel): { scopes: string[]; line: string; site: string } {
  const scopes: string[] = []
  for (const site of plant.sites) {
    scopes.push(site.id)
    for (const area of site.areas) {
      scopes.push(`${site.id}/${area.id}`)
      for (const line of area.lines) {
        scopes.push(`${site.id}/${area.id}/${line.id}`)
        for (const eq of line.equipment) scopes.push(`${site.id}/${area.id}/${line.id}/${eq.id}`)
      }
    }
  }
  const first = plant.sites[0]!
  const line = `${first.id}/${first.areas[0]!.id}/${first.areas[0]!.lines[0]!.id}`
  return { scopes, line, site: first.id }
}

/** Plausible figures: whole mWh energy (as accounting makes them), CO2 as arbitrary floats. */
function row(scope: string, step: BucketStep, t: number, revision: number, seed: number): StoredBucket {
  const energyWh = Math.round((seed % 9973) * 17.3) / 1000 + (step === '1m' ? 0 : 4000)
  return {
    scope,
    step,
    t,
    revision,
    energyWh,
    co2G: energyWh * 0.4712345,
    co2MarketG: energyWh * 0.3719,
    idleWh: seed % 7 === 0 ? energyWh / 5 : 0,
    peakW: 1000 + (seed % 50_000),
  }
}

function diskBytes(path: string): number {
  const st = statSync(path)
  if (!st.isDirectory()) return st.blocks * 512
  let sum = 0
  for (const name of readdirSync(path)) sum += diskBytes(join(path, name))
  return sum
}

/** Evicts the store's pages from the OS cache (this file only; the machine is shared). */
function evict(path: string): boolean {
  try {
    execFileSync('python3', [
      '-c',
      'import os,sys\nfor p in sys.argv[1:]:\n fd=os.open(p,os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)',
      ...readdirSync(path).map((name) => join(path, name)),
    ])
    return true
  } catch {
    return false
  }
}

async function phase1(store: HistoryStore, scopes: string[]): Promise<void> {
  const start = YEAR_END
  const batchMs: number[] = []
  let rows = 0
  let written = 0
  const cpu0 = process.cpuUsage()
  const before = store.stats()
  // The benchmarks' shared monitor (packages/runtime/src/loop-delay.ts), one per phase.
  const eld = startLoopDelayMonitor()
  const t0 = performance.now()
  for (let k = 0; k < PHASE1_MINUTES; k++) {
    const m = start + k * MIN
    const batch: StoredBucket[] = []
    // Built in slices, as the processor's events accumulate between flushes: the event-loop delay
    // measured is the store's, not this loop's.
    for (let s = 0; s < scopes.length; s++) {
      batch.push(row(scopes[s]!, '1m', m, 0, s + k))
      if (s % 1000 === 999) await new Promise((resolve) => setImmediate(resolve))
    }
    const end = m + MIN
    for (const [step, len] of [
      ['15m', 15 * MIN],
      ['1h', 60 * MIN],
      ['1d', DAY],
    ] as const) {
      if (end % len !== 0) continue
      for (let s = 0; s < scopes.length; s++) {
        batch.push(row(scopes[s]!, step, end - len, 0, s + k))
        if (s % 1000 === 999) await new Promise((resolve) => setImmediate(resolve))
      }
    }
    if (k > 0) for (let s = 0; s < scopes.length; s += 100) batch.push(row(scopes[s]!, '1m', m - MIN, 1, s + k + 1))
    const tb = performance.now()
    const result = await store.write(batch)
    if (end % (15 * MIN) === 0) {
      await store.writeDemand(
        scopes.map((scope, s) => ({ scope, t: end - 15 * MIN, kW: (s % 997) * 1.7, revision: 0 })),
      )
    }
    batchMs.push(performance.now() - tb)
    rows += batch.length
    written += result.written
  }
  const wallS = (performance.now() - t0) / 1000
  const eventLoopDelay = eld.summary()
  eld.stop()
  const cpu = process.cpuUsage(cpu0)
  const after = store.stats()
  const minuteRows = PHASE1_MINUTES * scopes.length
  const coarseRows = after.entries - before.entries - minuteRows
  log('phase1: processor-shaped batches, whole plant', {
    scopes: scopes.length,
    minutes: PHASE1_MINUTES,
    rows,
    written,
    wallS: +wallS.toFixed(1),
    rowsPerS: Math.round(rows / wallS),
    mainThreadCpuUsPerRow: +((cpu.user + cpu.system) / rows).toFixed(2),
    wallUsPerRow: +((wallS * 1e6) / rows).toFixed(2),
    minuteBatchP50Ms: pct(batchMs, 50),
    batchP99Ms: pct(batchMs, 99),
    batchMaxMs: pct(batchMs, 100),
    eventLoopDelayP50Ms: eventLoopDelay.p50Ms,
    eventLoopDelayP99Ms: eventLoopDelay.p99Ms,
    eventLoopDelayMaxMs: eventLoopDelay.maxMs,
    minuteTierBytesPerRow: +((after.minuteTierBytes - before.minuteTierBytes) / minuteRows).toFixed(1),
    coarseTierBytesPerRow: +((after.coarseTierBytes - before.coarseTierBytes) / Math.max(1, coarseRows)).toFixed(1),
  })
}

async function phase2(store: HistoryStore, chosen: string[]): Promise<void> {
  const before = store.stats()
  let rows = 0
  const cpu0 = process.cpuUsage()
  // The benchmarks' shared monitor (packages/runtime/src/loop-delay.ts), one per phase.
  const eld = startLoopDelayMonitor()
  const t0 = performance.now()
  let lastReport = t0
  for (let i = 0; i < chosen.length; i++) {
    const scope = chosen[i]!
    // One batch per scope and month-sized slice of the year (~2,900 quarters + hours + days).
    for (let from = YEAR_START; from < YEAR_END; from += 30 * DAY) {
      const to = Math.min(YEAR_END, from + 30 * DAY)
      const batch: StoredBucket[] = []
      for (let t = from; t < to; t += 15 * MIN) batch.push(row(scope, '15m', t, 0, i + t / MIN))
      for (let t = from; t < to; t += 60 * MIN) batch.push(row(scope, '1h', t, 0, i + t / MIN))
      for (let t = from; t < to; t += DAY) batch.push(row(scope, '1d', t, 0, i + t / MIN))
      await store.write(batch)
      rows += batch.length
    }
    if (performance.now() - lastReport > 60_000) {
      lastReport = performance.now()
      log('phase2 progress', { scopes: i + 1, of: chosen.length, rows, s: Math.round((lastReport - t0) / 1000) })
    }
  }
  const wallS = (performance.now() - t0) / 1000
  const eventLoopDelay = eld.summary()
  eld.stop()
  const cpu = process.cpuUsage(cpu0)
  const after = store.stats()
  log('phase2: a year of 15m, 1h, 1d for every FRACTION-th scope', {
    fraction: FRACTION,
    scopes: chosen.length,
    rows,
    wallS: +wallS.toFixed(1),
    rowsPerS: Math.round(rows / wallS),
    mainThreadCpuUsPerRow: +((cpu.user + cpu.system) / rows).toFixed(2),
    eventLoopDelayP50Ms: eventLoopDelay.p50Ms,
    eventLoopDelayP99Ms: eventLoopDelay.p99Ms,
    eventLoopDelayMaxMs: eventLoopDelay.maxMs,
    coarseTierBytesPerRow: +((after.coarseTierBytes - before.coarseTierBytes) / rows).toFixed(1),
    storeUsedBytes: after.usedBytes,
    storeFileBytes: after.fileBytes,
    dirDiskBytes: diskBytes(dir),
    entries: after.entries,
  })
}

async function queries(
  open: () => HistoryStore,
  store: HistoryStore,
  line: string,
  site: string,
  scopes: string[],
): Promise<HistoryStore> {
  const monthFrom = YEAR_END - 60 * DAY
  const monthTo = monthFrom + 30 * DAY
  const month = () => store.range(line, '15m', monthFrom, monthTo, 100_001)
  const year = () => store.range(site, '1d', YEAR_START, YEAR_END, 100_001)
  const check = (n: number, expected: number, what: string) => {
    if (n !== expected) throw new Error(`${what} gave ${n} rows, expected ${expected}`)
  }
  const timed = async (q: () => Promise<unknown[]>, expected: number, what: string) => {
    const t = performance.now()
    const got = await q()
    const ms = performance.now() - t
    check(got.length, expected, what)
    return ms
  }
  // Cold: pages evicted from the OS cache and the store reopened before each query.
  const cold = { month: [] as number[], year: [] as number[] }
  let evicted = true
  for (let i = 0; i < 10; i++) {
    if (process.env.HS_DEBUG) log('cold', { i })
    for (const which of ['month', 'year'] as const) {
      await store.close()
      evicted = evict(dir) && evicted
      store = open()
      cold[which].push(which === 'month' ? await timed(month, 2880, 'month') : await timed(year, 365, 'year'))
    }
  }
  const warm = { month: [] as number[], year: [] as number[] }
  for (let i = 0; i < 500; i++) {
    warm.month.push(await timed(month, 2880, 'month'))
    warm.year.push(await timed(year, 365, 'year'))
  }
  // While a minute's batch of the whole plant is being written (the write yields between slices).
  const during = { month: [] as number[], year: [] as number[] }
  for (let r = 0; r < 5; r++) {
    const m = YEAR_END + (PHASE1_MINUTES + r) * MIN
    const batch = scopes.map((scope, s) => row(scope, '1m', m, 0, s))
    const writing = store.write(batch)
    let done = false
    void writing.then(() => {
      done = true
    })
    while (!done) {
      during.month.push(await timed(month, 2880, 'month'))
      during.year.push(await timed(year, 365, 'year'))
      // As a server would: each query is one request, other work (the write's slices) runs between.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  const figures = (values: number[]) => ({
    n: values.length,
    p50Ms: pct(values, 50),
    p99Ms: pct(values, 99),
    maxMs: pct(values, 100),
  })
  log('queries', {
    evictedFromOsCache: evicted,
    monthOf15mForOneLine: { cold: figures(cold.month), warm: figures(warm.month), duringWrite: figures(during.month) },
    yearOf1dForTheSite: { cold: figures(cold.year), warm: figures(warm.year), duringWrite: figures(during.year) },
  })
  return store
}

async function main(): Promise<void> {
  const plant = JSON.parse(
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'services/cli/src/main.ts'), 'plant', 'generate', '--devices', String(DEVICES)],
      { maxBuffer: 1 << 30, cwd: ROOT },
    ).toString(),
  ) as PlantModel
  const { scopes, line, site } = scopesOf(plant)
  const maxAgeS = Math.max(...plant.sites.map((s) => s.maxAgeS ?? 604_800))
  log('plant', {
    devices: DEVICES,
    scopes: scopes.length,
    line,
    site,
    dir,
    phase1Minutes: PHASE1_MINUTES,
    fraction: FRACTION,
  })
  const open = () => new HistoryStore({ path: dir, maxAgeS })
  let store = open()
  await phase1(store, scopes)
  if (process.env.PHASES === '1') {
    await store.close()
    if (process.env.HS_DIR === undefined && process.env.HS_KEEP !== '1') rmSync(dir, { recursive: true, force: true })
    return
  }
  const chosen = scopes.filter((scope, i) => i % FRACTION === 0 || scope === line || scope === site)
  await phase2(store, chosen)
  store = await queries(open, store, line, site, scopes)
  const stats = store.stats()
  await store.close()
  log('end', { ...stats, dirDiskBytes: diskBytes(dir) })
  if (process.env.HS_DIR === undefined && process.env.HS_KEEP !== '1') rmSync(dir, { recursive: true, force: true })
}

await main()
