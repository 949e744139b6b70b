// Issue 14: the cost of today's figures (Accounting.live) early and late in the local day.
//
//   pnpm bench:today [--hours 1,23] [--seconds 60] [--scopes 1000] [--interval 120]
//                    [--reporting all|watched] [--out FILE]
// (`pnpm bench:today` runs node with --expose-gc, for the bytes kept per scope asked.)
//
// The 40,000-device plant of the replay benchmark (generatePlant, seed 1: one site, 23,128
// equipment, 27,636 scopes, Asia/Shanghai) is fed synthetic energy counters — the first device of
// each equipment (`all`, or only of the equipment within the watched scopes: `watched`, to keep the
// run short on a shared machine) and the PV and grid meters report every `--interval` seconds, each
// at its own phase — from local midnight on, taking the closed buckets every simulated minute as
// the processor does. An interval up to the site's latenessS (120 s) revises no closed minute.
// At each hour of `--hours` (local time) it then runs `--seconds` simulated seconds in which, every
// second: the devices whose phase it is report, one reading arrives 200 s late (it re-splits an
// interval of minutes that already closed, as NB-IoT retransmissions do), and live() is asked for
// each of `--scopes` watched scopes (the site, its areas, lines and equipment spread over the
// plant). Only the live() calls are timed. The cost the issue measured growing through the day is
// this one: a closed minute that changes used to make every scope's next live() sum the whole day
// again. Readings and bucket emission are not timed (bench:replay-day measures those).

import { cpus, loadavg, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import type { Reading } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'
import { type DeviceInfo, PlantIndex } from '@plantwatt/plant'
import { Accounting } from '../src/index.ts'

const { values } = parseArgs({
  options: {
    hours: { type: 'string', default: '1,23' },
    seconds: { type: 'string', default: '60' },
    scopes: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '120' },
    reporting: { type: 'string', default: 'all' },
    devices: { type: 'string', default: '40000' },
    out: { type: 'string' },
  },
})
const HOURS = values.hours.split(',').map(Number)
const SECONDS = Number(values.seconds)
const WATCHED = Number(values.scopes)
const INTERVAL = Number(values.interval)
const LATE_S = 200

// Local midnight of 2025-03-04 in Yibin (UTC+8), the replay benchmark's day.
const DAY0 = Date.UTC(2025, 2, 3, 16, 0) / 1000

const model = generatePlant({ devices: Number(values.devices), seed: 1 })
const plant = new PlantIndex(model)
const site = [...plant.sites.values()][0]!
const engine = new Accounting(plant)

interface Meter {
  device: DeviceInfo
  /** Wh per second. */
  rate: number
  phase: number
}

/** A deterministic fraction in [0, 1) of an integer. */
function frac(i: number): number {
  const x = Math.sin(i * 12.9898 + 78.233) * 43758.5453
  return x - Math.floor(x)
}

// The watched scopes: the site and its areas, every 15th line, the rest equipment spread evenly.
const watched: string[] = []
const lines = site.scopes.filter((s) => s.level === 'line')
for (const node of site.scopes) if (node.level === 'site' || node.level === 'area') watched.push(node.scope)
for (let i = 0; i < lines.length && watched.length < WATCHED / 3; i += 15) watched.push(lines[i]!.scope)
const step = Math.max(1, Math.floor(site.equipment.length / (WATCHED - watched.length)))
for (let i = 0; i < site.equipment.length && watched.length < WATCHED; i += step) {
  watched.push(site.equipment[i]!.scope)
}
const watchedSet = new Set(watched)

const meters: Meter[] = []
let siteRate = 0
for (const eq of site.equipment) {
  const rate = (eq.spec.ratedPowerW * (0.2 + 0.6 * frac(eq.index))) / 3600
  const inWatched = eq.ancestors.some((a) => (a.level === 'line' || a.level === 'equipment') && watchedSet.has(a.scope))
  if (values.reporting === 'watched' && !inWatched) continue
  siteRate += rate
  meters.push({ device: plant.device(eq.spec.devices[0]!)!, rate, phase: meters.length % INTERVAL })
}
const pv = site.spec.meters?.pv?.[0]
const grid = site.spec.meters?.grid?.[0]
if (pv !== undefined) meters.push({ device: plant.device(pv)!, rate: 0.3 * siteRate, phase: 0 })
if (grid !== undefined) meters.push({ device: plant.device(grid)!, rate: 0.7 * siteRate, phase: 0 })
const byPhase: Meter[][] = Array.from({ length: INTERVAL }, () => [])
for (const meter of meters) byPhase[meter.phase]!.push(meter)

const START = DAY0 - INTERVAL
const counter = (meter: Meter, t: number) => meter.rate * (t - START)
const reading = (time: number, value: number): Reading => ({ name: 'energy', time, value, field: 's', unit: 'Wh' })

let t = START
let accepted = 0
let bucketEvents = 0
/** Simulated seconds up to `until`: the devices of each second's phase report; minutes close. */
function advance(until: number, each?: (t: number) => void): void {
  for (; t < until; t++) {
    for (const meter of byPhase[(t - START) % INTERVAL]!) {
      if (engine.accept(meter.device, reading(t, counter(meter, t))) === 'accepted') accepted++
    }
    each?.(t)
    if (t % 60 === 59) bucketEvents += engine.takeBucketEvents().length
  }
}

/** One reading LATE_S behind, between a device's two retained readings, a little off their line. */
function late(now: number): void {
  const when = now - LATE_S
  // A device that reported 100 s ago (its previous reading is INTERVAL s before that): its
  // readings around `when` are still retained.
  const meter = byPhase[(now - 100 - START) % INTERVAL]![0]
  if (meter === undefined || meter.device.role !== 'equipment') return
  const jitter = (frac(now) - 0.5) * 0.2 * meter.rate * 100
  if (engine.accept(meter.device, reading(when, counter(meter, when) + jitter)) === 'accepted') accepted++
}

const results: Record<string, unknown>[] = []
const began = Date.now()
/** Heap and typed arrays in use after a full collection (with --expose-gc), else undefined. */
function memoryInUse(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return undefined
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}
let bytesPerScopeAsked: number | undefined

for (const hour of HOURS) {
  advance(DAY0 + hour * 3600)
  // Each scope asked once before the timed seconds: the scopes were not asked during the fill, so
  // their first call sums the day so far (a processor asks its watched scopes every second). The
  // first time, what live() keeps per scope asked: memory in use before and after.
  const before = bytesPerScopeAsked === undefined ? memoryInUse() : undefined
  for (const scope of watched) engine.live(scope)
  const after = before === undefined ? undefined : memoryInUse()
  if (before !== undefined && after !== undefined) bytesPerScopeAsked = Math.round((after - before) / watched.length)
  const todayStats = () => (engine as { todayStats?: () => { minutesRead: number } }).todayStats?.()
  const minutesBefore = todayStats()?.minutesRead
  const perSecond: number[] = []
  let calls = 0
  let checksum = 0
  let cpuUs = 0
  advance(DAY0 + hour * 3600 + SECONDS, (now) => {
    late(now)
    const cpu = process.cpuUsage()
    const from = process.hrtime.bigint()
    for (const scope of watched) checksum += engine.live(scope)!.energyTodayWh
    perSecond.push(Number(process.hrtime.bigint() - from) / 1000)
    const used = process.cpuUsage(cpu)
    cpuUs += used.user + used.system
    calls += watched.length
  })
  perSecond.sort((a, b) => a - b)
  const total = perSecond.reduce((a, b) => a + b, 0)
  const result = {
    localHour: hour,
    scopes: watched.length,
    seconds: SECONDS,
    liveCalls: calls,
    usPerLive: Math.round((total / calls) * 100) / 100,
    // Process CPU time (less sensitive than wall time to other work on a shared machine).
    cpuUsPerLive: Math.round((cpuUs / calls) * 100) / 100,
    // Minutes today's sums read per live() (a cost that no other work on the machine moves).
    minutesPerLive:
      minutesBefore === undefined
        ? undefined
        : Math.round(((todayStats()!.minutesRead - minutesBefore) / calls) * 100) / 100,
    msPerSecondP50: Math.round(perSecond[Math.floor(perSecond.length / 2)]! / 10) / 100,
    msPerSecondMax: Math.round(perSecond.at(-1)! / 10) / 100,
    siteEnergyTodayWh: Math.round(engine.live(site.node.scope)!.energyTodayWh),
    checksum: Math.round(checksum),
    load: loadavg().map((x) => Math.round(x * 100) / 100),
  }
  results.push(result)
  console.log(JSON.stringify(result))
}
const [early, lateHour] = [results[0], results.at(-1)] as { usPerLive: number; cpuUsPerLive: number }[]
const stats = (engine as { todayStats?: () => unknown }).todayStats?.()

const summary = {
  devices: Number(values.devices),
  equipment: site.equipment.length,
  siteScopes: site.scopes.length,
  interval: INTERVAL,
  reporting: values.reporting,
  reportingMeters: meters.length,
  accepted,
  counters: engine.counters,
  bucketEvents,
  ratioLastToFirst: Math.round((lateHour!.usPerLive / early!.usPerLive) * 100) / 100,
  cpuRatioLastToFirst: Math.round((lateHour!.cpuUsPerLive / early!.cpuUsPerLive) * 100) / 100,
  bytesPerScopeAsked,
  todayStats: stats,
  wallS: Math.round((Date.now() - began) / 100) / 10,
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30) },
  node: process.version,
}
console.log(JSON.stringify(summary))
if (values.out !== undefined) {
  const { writeFile } = await import('node:fs/promises')
  await writeFile(values.out, `${JSON.stringify({ results, summary }, null, 2)}\n`)
}
