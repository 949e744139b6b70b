// `pnpm bench`: the figures of issue 16 in one command, on this machine.
//
//   1. `plantwatt up` under load (bench:up-load, run as a child process: its module runs on
//      import): 40,000 sessions at one pack per device every 10 s for 10 minutes, and 19,000
//      sessions at one pack per second;
//   2. the ceiling ladder (ladder.ts): 19,000 sessions, the offered rate raised step by step on
//      `plantwatt up`, then the same ladder, generator and sessions on Debian's Mosquitto
//      relaying QoS 1 to one subscriber; the ratio of the ceilings and of CPU per pack;
//   3. the gateway and replay figures: the latest JSON results of bench:gateway and
//      bench:replay-day quoted (25–54 minutes each: rerun only with --with-gateway/--with-replay).
//
// Writes one JSON (services/cli/bench/results/bench-<time>.json, or --out) and the generated
// summary between the markers of docs/benchmarks.md (or --docs), the rest of that file untouched.
//
//   pnpm bench                 # 35–45 minutes of both cores
//   pnpm bench --quick         # a small version, 2–4 minutes (services/cli/test/bench.test.ts)
//   pnpm bench --help

import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { generatePlant } from '@plantwatt/fleet'
import { Command, InvalidArgumentError, Option } from 'commander'
import { type LadderResult, type LadderTargetName, runLadder } from './ladder.ts'
import { type BenchResult, type Machine, type Quoted, renderSummary, replaceSummary, type UpRun } from './summary.ts'

const ROOT = resolve(import.meta.dirname, '../../..')
const RESULTS = join(ROOT, 'services/cli/bench/results')
const UP_LOAD = join(ROOT, 'services/cli/bench/up-load.ts')

const positiveInt = (text: string) => {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError('a positive integer')
  return value
}
const rateList = (text: string) => {
  const rates = text.split(',').map((part) => positiveInt(part.trim()))
  if (rates.some((rate, i) => i > 0 && rate <= rates[i - 1]!)) throw new InvalidArgumentError('rising rates')
  return rates
}
const targetList = (text: string) => {
  const targets = text.split(',').map((part) => part.trim())
  if (targets.some((t) => t !== 'plantwatt' && t !== 'mosquitto')) {
    throw new InvalidArgumentError('plantwatt and/or mosquitto')
  }
  return targets as LadderTargetName[]
}

// `pnpm bench -- --quick` passes the `--` on: drop it.
const argv = process.argv.slice(2)
if (argv[0] === '--') argv.shift()
const program = new Command('pnpm bench')
  .description(
    'The issue-16 figures in one command: plantwatt up under load, the ceiling ladder against Mosquitto, the gateway and replay results.',
  )
  .option('--quick', 'a small version (200 sessions, short runs, 2 ladder steps of 10 s): 2–4 minutes')
  .addOption(new Option('--only <part>', 'run only this part').choices(['up', 'ladder']))
  .option('--out <file>', 'the JSON result (default services/cli/bench/results/bench-<time>.json)')
  .option('--docs <file>', 'the Markdown file whose summary section is replaced', 'docs/benchmarks.md')
  .option('--no-docs', 'write no summary into a Markdown file')
  .option('--with-gateway', 'also run bench:gateway (about 25 minutes) rather than quote its latest result')
  .option('--with-replay', 'also run bench:replay-day (about 54 minutes) rather than quote its latest result')
  .option('--ladder-sessions <n>', 'sessions of the ladder (default 19000; quick 200)', positiveInt)
  .option('--ladder-rates <list>', 'offered packs/s of the steps (default 2000,4000,8000,12000,16000,19000)', rateList)
  .option('--ladder-step-s <s>', 'seconds measured per step (default 60; quick 10)', positiveInt)
  .option('--ladder-warmup-s <s>', 'seconds at each new rate before measuring (default 10; quick 2)', positiveInt)
  .option('--ladder-targets <list>', 'plantwatt,mosquitto (default both)', targetList)
  .option('--ladder-continue', 'keep climbing after a step fell behind')
  .parse(argv, { from: 'user' })
const opts = program.opts<{
  quick?: boolean
  only?: 'up' | 'ladder'
  out?: string
  docs: string | false
  withGateway?: boolean
  withReplay?: boolean
  ladderSessions?: number
  ladderRates?: number[]
  ladderStepS?: number
  ladderWarmupS?: number
  ladderTargets?: LadderTargetName[]
  ladderContinue?: boolean
}>()
const quick = opts.quick === true

const startedMs = Date.now()
const stamp = new Date(startedMs).toISOString().replace(/[:.]/g, '-')
const out = resolve(opts.out ?? join(RESULTS, `bench${quick ? '-quick' : ''}-${stamp}.json`))
const outDir = dirname(out)
const log = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} [bench] ${text}\n`)
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const shown = (path: string) => {
  const inRepo = relative(ROOT, path)
  return inRepo.startsWith('..') ? path : inRepo
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim()
  } catch {
    return ''
  }
}

function machine(loadAverageAtStart: number[]): Machine {
  return {
    cpus: cpus().length,
    model: cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAverageAtStart,
    loadAverageAtEnd: loadavg().map((value) => round(value, 2)),
  }
}

async function runChild(args: string[], label: string): Promise<number | null> {
  log(`${label}: node ${args.map((arg) => shown(arg)).join(' ')}`)
  // Their progress and summaries go to stderr: stdout is this command's summary.
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 2, 2] })
  const [code] = (await once(child, 'exit')) as [number | null]
  return code
}

// --- 1. plantwatt up under load -----------------------------------------------------------------

interface UpShape {
  name: string
  devices: number
  intervalS: number
  durationS: number
}

const UP_SHAPES: UpShape[] = quick
  ? [
      { name: 'quick-10s', devices: 200, intervalS: 10, durationS: 10 },
      { name: 'quick-1s', devices: 200, intervalS: 1, durationS: 10 },
    ]
  : [
      { name: '40000-10s', devices: 40_000, intervalS: 10, durationS: 600 },
      { name: '19000-1s', devices: 19_000, intervalS: 1, durationS: 300 },
    ]

async function upRun(shape: UpShape): Promise<UpRun> {
  const file = join(outDir, `bench-up-${shape.name}-${stamp}.json`)
  const args = [
    '--devices',
    String(shape.devices),
    '--interval-s',
    String(shape.intervalS),
    '--duration-s',
    String(shape.durationS),
    '--out',
    file,
  ]
  const exitCode = await runChild(['--import', 'tsx', UP_LOAD, ...args], `up ${shape.name}`)
  if (!existsSync(file)) throw new Error(`bench:up-load ${args.join(' ')} wrote no result (exit ${exitCode})`)
  const r = JSON.parse(readFileSync(file, 'utf8'))
  return {
    name: shape.name,
    command: `pnpm bench:up-load ${args.slice(0, -2).join(' ')}`,
    file: shown(file),
    exitCode,
    devices: r.settings.devices,
    intervalS: r.settings.intervalS,
    durationS: r.settings.durationS,
    packsSent: r.generator.packsSent,
    packsAcked: r.generator.packsAcked,
    ackedPerS: r.generator.ackedPerS,
    puback: r.generator.puback,
    liveAge: r.live.ageMs,
    liveFrames: r.live.frames,
    ok: r.ok,
    lost: r.lost,
    brokerWorkers: r.up.brokerWorkers,
    cpuMicrosPerPackTaken: r.up.cpuMicrosPerPackTaken,
    pssMaxMB: r.up.pssMaxMB,
    pssPerDeviceKB: r.up.pssPerDeviceKB,
    upCpuPercentUnderLoad: r.up.cpuPercentUnderLoad,
    machineCpuPercentUnderLoad: r.machineCpuPercentUnderLoad,
    generatorCpuPercentUnderLoad: r.generatorCpuPercentUnderLoad,
    otherCpuPercentUnderLoad: r.otherCpuPercentUnderLoad,
    loadAverageAtStart: r.machine.loadAverageAtStart,
  }
}

// --- 3. the gateway and replay figures ----------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: other benchmarks' JSON results, each field read defensively
type Json = Record<string, any>

/** The newest result in `dir` whose name starts with `prefix`, by the date recorded inside it. */
function latestResult(dir: string, prefix: string, dateOf: (j: Json) => string | undefined) {
  let best: { file: string; json: Json; date: string } | undefined
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    if (!name.startsWith(prefix) || !name.endsWith('.json')) continue
    try {
      const json = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Json
      const date = dateOf(json) ?? ''
      if (!best || date > best.date) best = { file: join(dir, name), json, date }
    } catch {
      // Not a result (a partial file): skip it.
    }
  }
  return best
}

const machineText = (m: Json | undefined) =>
  m
    ? `${m.cores ?? m.nproc ?? m.cpus} cores (${m.cpu ?? m.model}), ${m.memoryGiB ?? m.memGiB} GiB, Node ${m.node}`
    : null

function gatewayQuote(file: string | undefined, ranNow: boolean): Quoted | null {
  const dir = join(ROOT, 'services/gateway/bench/results')
  const found = file
    ? { file, json: JSON.parse(readFileSync(file, 'utf8')) as Json }
    : latestResult(dir, 'gateway-', (j) => j.startedAt)
  if (!found) return null
  const j = found.json
  return {
    file: shown(found.file),
    ranNow,
    date: j.startedAt ?? null,
    commit: j.commit ?? null,
    machine: machineText(j.machine),
    loadAverageAtStart: j.loadAverage?.atStart ?? null,
    figures: {
      'live subscribers': j.live?.subscriptions ?? j.connect?.connected ?? null,
      'plant devices': j.options?.devices ?? null,
      'frame delay p50 ms': j.live?.delayMs?.p50Ms ?? null,
      'p99 ms': j.live?.delayMs?.p99Ms ?? null,
      'gateway CPU %': j.live?.server?.serverCpuPct ?? null,
      'KB per live client': j.serverMemory?.perLiveClientKB ?? null,
      'generator CPU %': j.live?.generatorCpuPct ?? null,
      'machine CPU % of 200': j.live?.server?.machineCpuPct ?? null,
    },
  }
}

function replayQuote(file: string | undefined, ranNow: boolean): Quoted | null {
  const dir = join(ROOT, 'services/processor/bench/results')
  const found = file
    ? { file, json: JSON.parse(readFileSync(file, 'utf8')) as Json }
    : latestResult(dir, 'replay-day-', (j) => j.date)
  if (!found) return null
  const j = found.json
  return {
    file: shown(found.file),
    ranNow,
    date: j.date ?? null,
    commit: j.source?.commit ?? j.commit ?? null,
    machine: machineText(j.machine),
    loadAverageAtStart: j.load?.atStart ?? null,
    figures: {
      devices: j.recording?.spec?.devices ?? null,
      'simulated hours': j.replay?.simulatedHours ?? null,
      'readings accepted': j.counts?.accepted ?? null,
      'readings/s': j.replay?.readingsPerS ?? null,
      'CPU µs per reading': j.replay?.cpuMicrosPerReading ?? null,
      'wall s': j.replay?.wallSeconds ?? null,
      'peak RSS MB': j.replay?.memory?.peakRssMB ?? null,
      'idle recall': j.accuracy?.idle?.recall ?? null,
    },
  }
}

// --- the run ------------------------------------------------------------------------------------

const loadAtStart = loadavg().map((value) => round(value, 2))
const commit = git(['rev-parse', 'HEAD']) || 'unknown'
const uncommitted = git(['status', '--porcelain', '--untracked-files=no'])
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => line.slice(3))
mkdirSync(outDir, { recursive: true })
const problems: string[] = []
let failed = false

const up: UpRun[] = []
if (opts.only !== 'ladder') {
  for (const shape of UP_SHAPES) {
    try {
      const run = await upRun(shape)
      up.push(run)
      if (run.exitCode !== 0) {
        failed = true
        problems.push(`bench:up-load ${shape.name} exited with ${run.exitCode} (something lost or rejected)`)
      }
    } catch (error) {
      failed = true
      problems.push(`up ${shape.name}: ${(error as Error).message}`)
      log(`up ${shape.name} failed: ${(error as Error).message}`)
    }
  }
}

let ladder: LadderResult | null = null
if (opts.only !== 'up') {
  const sessions = opts.ladderSessions ?? (quick ? 200 : 19_000)
  try {
    ladder = await runLadder({
      plant: generatePlant({ devices: sessions, seed: 1 }),
      rates: opts.ladderRates ?? (quick ? [100, 200] : [2000, 4000, 8000, 12_000, 16_000, 19_000]),
      stepS: opts.ladderStepS ?? (quick ? 10 : 60),
      warmupS: opts.ladderWarmupS ?? (quick ? 2 : 10),
      // As bench:up-load: one generator process per 10,000 sessions (at least 2), one source
      // address per 5,000 (one process holds at most 20,000 descriptors here).
      workers: Math.max(2, Math.ceil(sessions / 10_000)),
      addresses: Math.max(2, Math.ceil(sessions / 5000)),
      connectRatePerS: 2000,
      targets: opts.ladderTargets ?? ['plantwatt', 'mosquitto'],
      continueAfterBehind: opts.ladderContinue === true,
      log,
    })
  } catch (error) {
    failed = true
    problems.push(`ladder: ${(error as Error).message}`)
    log(`ladder failed: ${(error as Error).stack ?? (error as Error).message}`)
  }
}

async function other(
  label: string,
  run: boolean | undefined,
  args: (file: string) => string[],
  quote: (file: string | undefined, ranNow: boolean) => Quoted | null,
): Promise<Quoted | null> {
  if (!run) return quote(undefined, false)
  const file = join(outDir, `bench-${label}-${stamp}.json`)
  const code = await runChild(args(file), label)
  if (code !== 0 || !existsSync(file)) {
    failed = true
    problems.push(`${label} exited with ${code}`)
    return quote(undefined, false)
  }
  return quote(file, true)
}
const gateway = await other(
  'gateway',
  opts.withGateway,
  (file) => ['--import', 'tsx', join(ROOT, 'services/gateway/bench/live-subscribers.ts'), '--out', file],
  gatewayQuote,
)
const replay = await other(
  'replay-day',
  opts.withReplay,
  (file) => ['--expose-gc', '--import', 'tsx', join(ROOT, 'services/processor/bench/replay-day.ts'), '--out', file],
  replayQuote,
)

const result: BenchResult & { problems: string[] } = {
  command: `pnpm bench ${argv.join(' ')}`.trim(),
  date: new Date(startedMs).toISOString(),
  commit,
  uncommitted,
  quick,
  machine: machine(loadAtStart),
  seconds: Math.round((Date.now() - startedMs) / 1000),
  up,
  ladder,
  gateway,
  replay,
  problems,
}
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
log(`written to ${shown(out)}`)
const summary = renderSummary(result, shown(out))
if (opts.docs !== false) {
  const docs = resolve(ROOT, opts.docs)
  writeFileSync(docs, replaceSummary(readFileSync(docs, 'utf8'), summary))
  log(`summary written into ${shown(docs)}`)
}
process.stdout.write(`${summary}\n`)
if (problems.length > 0) log(`problems: ${problems.join('; ')}`)
process.exit(failed ? 1 : 0)
