// The load command of issue 13 (reused by issue 16): a generated plant on a real `plantwatt up`
// child process, every device a real MQTT session of its own (CONTRACT.md §4 device auth) in
// load-generator child processes, one SenML pack per device every interval at QoS 1, spread
// evenly over the interval. It measures what a user of `up` would see and what it costs:
//
//   - packs and readings sent and acknowledged, PUBACK latency (generator side);
//   - live frames of a WebSocket client subscribed to the site and a few lines: age = arrival
//     (wall clock) − the frame's `at` (the site clock, i.e. the newest reading time accepted; the
//     devices stamp readings with the wall clock at publish), and the gaps between frames;
//   - the event-loop delay of `up`, from inside it (packages/runtime/bench/loop-delay-preload.ts);
//   - checkpoint writes, durations and sizes (the processor's metrics: plantwatt_checkpoint_*);
//   - CPU seconds, RSS and PSS of `up` (/proc);
//   - nothing lost: after the load, one last pack dated past `latenessS` closes the buckets; once
//     the site's 1-minute bucket holding the end of the load is out on the `buckets` channel and
//     the processor has taken every acknowledged message, readings accepted (its /metrics) must
//     equal readings acknowledged. Exits 1 when anything was lost or rejected.
//
//   pnpm bench:up-load [--devices 19000 --interval-s 10 --duration-s 600]    (pnpm bench:up-load --help)
//   pnpm bench:up-load --quick                                              (500 devices, 60 s)

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { deriveDevicePassword, deviceTopic, encodeSenmlJson, type PlantModel } from '@plantwatt/contract'
import { fleetDevicesOf, generatePlant, type LatencySummary, runFleetProcesses } from '@plantwatt/fleet'
import { type LoopDelayMark, type LoopDelaySummary, loopDelayMarkFile, requestLoopDelayMark } from '@plantwatt/runtime'
import mqtt from 'mqtt'
import WebSocket from 'ws'
// /proc readings shared with the other load benches (bench code, not part of a service).
import { cpuSeconds, machineCpu, rssBytes } from '../../broker/bench/proc.ts'
import { buildCli } from '../src/build.ts'
import { READINGS_PER_PACK } from './up-load-payload.ts'

const HELP = `Usage: pnpm bench:up-load [options]

  --devices N        devices of the generated plant, each its own MQTT session (default 19000)
  --interval-s S     seconds between two packs of one device (default 10)
  --duration-s S     seconds of load (default 600)
  --quick            500 devices for 60 s unless given otherwise (the repository's test runs this)
  --workers W        load-generator processes (default: one per 10,000 devices, at least 2)
  --addresses A      source addresses 127.0.0.2… (default: one per 5,000 devices, at least 2)
  --connect-rate R   connects per second over the whole generator (default 2000)
  --live-lines L     lines the live client subscribes to besides the site (default 3)
  --seed S           plant seed (default 1)
  --up-workers N     plantwatt up --workers (default: up's own, one broker worker per core)
  --up-node-args=A   Node options for the \`up\` process, e.g. --up-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
  --from-sources     run \`up\` from its TypeScript sources under tsx instead of built (pnpm build's bundles)
  --keep             keep the temporary directory (plant, data directory, up.log)
  --out FILE         JSON result (default services/cli/bench/results/up-load-<devices>-<time>.json)
`

const ROOT = resolve(import.meta.dirname, '../../..')
const CLI_ENTRY = join(ROOT, 'services/cli/src/main.ts')
const PRELOAD = join(ROOT, 'packages/runtime/bench/loop-delay-preload.ts')
const PAYLOAD = join(import.meta.dirname, 'up-load-payload.ts')
const SEGMENT_MS = 10_000

const argv = process.argv.slice(2)
if (argv[0] === '--') argv.shift()
const { values } = parseArgs({
  args: argv,
  options: {
    devices: { type: 'string' },
    'interval-s': { type: 'string', default: '10' },
    'duration-s': { type: 'string' },
    quick: { type: 'boolean', default: false },
    workers: { type: 'string' },
    addresses: { type: 'string' },
    'connect-rate': { type: 'string', default: '2000' },
    'live-lines': { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    'up-node-args': { type: 'string', default: '' },
    'up-workers': { type: 'string' },
    keep: { type: 'boolean', default: false },
    'from-sources': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  process.stdout.write(HELP)
  process.exit(0)
}

function int(name: string, text: string | undefined, min: number, max: number): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`--${name} must be an integer from ${min} to ${max}, got ${text}\n\n${HELP}`)
    process.exit(2)
  }
  return value
}

const devicesWanted = int('devices', values.devices ?? (values.quick ? '500' : '19000'), 1, 100_000)
const settings = {
  devices: devicesWanted,
  intervalS: int('interval-s', values['interval-s'], 1, 3600),
  durationS: int('duration-s', values['duration-s'] ?? (values.quick ? '60' : '600'), 10, 24 * 3600),
  quick: values.quick,
  workers: int('workers', values.workers ?? String(Math.max(2, Math.ceil(devicesWanted / 10_000))), 1, 64),
  addresses: int('addresses', values.addresses ?? String(Math.max(2, Math.ceil(devicesWanted / 5000))), 1, 250),
  connectRatePerS: int('connect-rate', values['connect-rate'], 1, 100_000),
  liveLines: int('live-lines', values['live-lines'], 0, 50),
  seed: int('seed', values.seed, 0, 2 ** 31),
  upNodeArgs: values['up-node-args'].split(/\s+/).filter(Boolean),
  /** `up` run as `pnpm start` runs it (built, plain node) or from sources under tsx. */
  upRuntime: values['from-sources'] ? ('tsx' as const) : ('built' as const),
}
const out = resolve(
  values.out ??
    join(
      ROOT,
      'services/cli/bench/results',
      `up-load-${settings.devices}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
    ),
)

const startedMs = Date.now()
const log = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`)
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const mb = (bytes: number) => round(bytes / 2 ** 20)

// Bounded in time whatever happens: connects, load, drain and shutdown, with room to spare.
const WATCHDOG_MS = (settings.durationS + 1800) * 1000
const watchdog = setTimeout(() => {
  log(`gave up after ${WATCHDOG_MS / 1000} s`)
  void cleanup().finally(() => process.exit(1))
}, WATCHDOG_MS)
watchdog.unref()

// --- the plant, the data directory and the `up` process ---------------------------------------

const work = await mkdtemp(join(tmpdir(), 'plantwatt-up-load-'))
const plant: PlantModel = generatePlant({ devices: settings.devices, seed: settings.seed })
const site = plant.sites[0]!
const plantFile = join(work, 'plant.json')
await writeFile(plantFile, JSON.stringify(plant))
const dataDir = join(work, 'data')
const deviceSecret = randomBytes(32).toString('hex')
const adminToken = randomBytes(32).toString('hex')
const devices = fleetDevicesOf(plant)
const lineScopes = site.areas
  .flatMap((area) => area.lines.map((line) => `${site.id}/${area.id}/${line.id}`))
  .slice(0, settings.liveLines)

log(`plant: ${devices.length} devices, ${lineScopes.length} lines watched; work directory ${work}`)

interface UpProcess {
  child: ChildProcess
  pid: number
  mqttPort: number
  httpPort: number
  /** Broker workers of `up` (1: the single process). */
  brokerWorkers: number
  logCounts: Record<string, number>
  exited: Promise<number | null>
}

/**
 * The command line of `up`: built into the work directory as `pnpm build` builds it (with the
 * loop-delay preload built beside it, as plain node cannot load TypeScript), or from sources.
 */
async function upCommand(): Promise<string[]> {
  if (settings.upRuntime === 'tsx') return ['--import', 'tsx', '--import', PRELOAD, ...settings.upNodeArgs, CLI_ENTRY]
  const outDir = join(work, 'cli')
  await buildCli(outDir, { 'loop-delay-preload': PRELOAD })
  return ['--import', join(outDir, 'loop-delay-preload.js'), ...settings.upNodeArgs, join(outDir, 'main.js')]
}

async function startUp(): Promise<UpProcess> {
  const child = spawn(
    process.execPath,
    [
      ...(await upCommand()),
      'up',
      '--plant',
      plantFile,
      '--data-dir',
      dataDir,
      '--host',
      '127.0.0.1',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        PLANTWATT_DEVICE_SECRET: deviceSecret,
        PLANTWATT_ADMIN_TOKEN: adminToken,
        PLANTWATT_LOG_LEVEL: 'info',
        PLANTWATT_LOOP_DELAY_DIR: work,
        ...(values['up-workers'] === undefined ? {} : { PLANTWATT_WORKERS: values['up-workers'] }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const logCounts: Record<string, number> = {}
  const upLog: string[] = []
  // Every line `up` prints, kept with the work directory (--keep): its log, and what Node options
  // such as --trace-gc print (not JSON, so not counted below).
  const upLogFile = createWriteStream(join(work, 'up.log'))
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const listening = new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on('close', () => upLogFile.end())
    lines.on('line', (line) => {
      upLogFile.write(`${line}\n`)
      let record: Record<string, unknown>
      try {
        record = JSON.parse(line)
      } catch {
        return
      }
      // pino levels: 40 warn, 50 error, 60 fatal. Kept for the result; the rest is not needed.
      const level = Number(record.level)
      if (level >= 40) {
        const key = `${level >= 50 ? 'error' : 'warn'}: ${String(record.msg)}`
        logCounts[key] = (logCounts[key] ?? 0) + 1
        if (upLog.length < 200) upLog.push(line)
      }
      if (record.msg === 'listening') resolvePromise(record)
    })
    void exited.then((code) => reject(new Error(`plantwatt up exited with ${code} before listening:\n${stderr}`)))
  })
  const record = await listening
  return {
    child,
    pid: child.pid!,
    mqttPort: record.mqttPort as number,
    httpPort: record.httpPort as number,
    brokerWorkers: (record.workers as number | undefined) ?? 1,
    logCounts,
    exited,
  }
}

let up: UpProcess | undefined
let fleet: Awaited<ReturnType<typeof runFleetProcesses>> | undefined
let live: LiveWatcher | undefined

async function cleanup(): Promise<void> {
  live?.close()
  await fleet?.stop({ drainMs: 0, closeMs: 500 }).catch(() => undefined)
  if (up && up.child.exitCode === null && up.child.signalCode === null) {
    up.child.kill('SIGTERM')
    const timer = setTimeout(() => up?.child.kill('SIGKILL'), 60_000)
    await up.exited
    clearTimeout(timer)
  }
  if (!values.keep) await rm(work, { recursive: true, force: true })
}
process.once('SIGINT', () => {
  log('interrupted')
  void cleanup().finally(() => process.exit(130))
})

// --- measuring `up` from outside and inside ----------------------------------------------------

/** Proportional set size (shared pages split between their users), bytes; 0 if unreadable. */
function pssBytes(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

function peakRssBytes(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/**
 * `up` and its broker workers (issue 16: `up --workers N` forks them with node's cluster module):
 * CPU and memory are summed over the whole tree, as a user's machine pays for all of them.
 */
function upTree(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()
    return [pid, ...(children === '' ? [] : children.split(/\s+/).map(Number))]
  } catch {
    return [pid]
  }
}
const treeSum = (pid: number, read: (pid: number) => number) => upTree(pid).reduce((sum, each) => sum + read(each), 0)

/** Asks `up` for its event-loop delay since the previous mark (loop-delay-preload.ts). */
function markLoop(pid: number, mark: number): Promise<LoopDelayMark> {
  // Patient: a starved or stalled `up` answers late, and a second signal sent before it answers
  // would merge with the first (signals do not queue), shifting every later mark.
  return requestLoopDelayMark(pid, loopDelayMarkFile(work, pid), mark, 600_000)
}

/** Sums of each metric family of a Prometheus text page (labels added up). */
function parseMetrics(text: string): Map<string, number> {
  const sums = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (!match) continue
    const value = Number(match[3])
    if (Number.isFinite(value)) sums.set(match[1]!, (sums.get(match[1]!) ?? 0) + value)
  }
  return sums
}

/** The per-reason lines of one labelled counter. */
function metricByLabel(text: string, name: string, label: string): Record<string, number> {
  const result: Record<string, number> = {}
  const pattern = new RegExp(`^${name}\\{[^}]*${label}="([^"]+)"[^}]*\\}\\s+(\\S+)`, 'gm')
  for (const match of text.matchAll(pattern)) result[match[1]!] = Number(match[2])
  return result
}

async function scrape(port: number): Promise<{ text: string; sums: Map<string, number> }> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(300_000) })
  const text = await response.text()
  return { text, sums: parseMetrics(text) }
}

interface CheckpointWrite {
  /** Seconds since the load started (negative: before) of the scrape that first showed it. */
  atS: number
  /** Checkpoints finished since the scrape before (one, unless scrapes were far apart). */
  count: number
  /** Mean wall time of those, from snapshot to commit on disk (plantwatt_checkpoint_duration_seconds). */
  durationMs: number
  /** Bytes of the last one, all parts (plantwatt_checkpoint_bytes{part}, columns uncompressed). */
  bytes: number
  parts: Record<string, number>
  /** The last one's longest turn of the event loop by kind, ms (plantwatt_checkpoint_held_seconds{kind}). */
  heldMs: Record<string, number>
}

/** The processor's checkpoint figures on a /metrics page: writes so far, their total seconds, the last one's bytes. */
function checkpointFigures(text: string) {
  const sums = parseMetrics(text)
  const held = metricByLabel(text, 'plantwatt_checkpoint_held_seconds', 'kind')
  return {
    count: sums.get('plantwatt_checkpoint_duration_seconds_count') ?? 0,
    seconds: sums.get('plantwatt_checkpoint_duration_seconds_sum') ?? 0,
    parts: metricByLabel(text, 'plantwatt_checkpoint_bytes', 'part'),
    heldMs: Object.fromEntries(Object.entries(held).map(([kind, seconds]) => [kind, round(seconds * 1000)])),
  }
}

/**
 * The processor's checkpoints, from its metrics on each scrape (the state store writes several
 * files; there is no one file to watch): each rise of the duration histogram's count is a write.
 */
function watchCheckpoints(first: string, loadStartedAt: () => number) {
  const writes: CheckpointWrite[] = []
  let last = checkpointFigures(first)
  return {
    writes,
    /** Notes what a scrape of /metrics shows; returns the writes it found. */
    seen(text: string): number {
      const now = checkpointFigures(text)
      const count = now.count - last.count
      if (count > 0) {
        const parts = now.parts
        writes.push({
          atS: round((Date.now() - loadStartedAt()) / 1000),
          count,
          durationMs: round(((now.seconds - last.seconds) * 1000) / count),
          bytes: Object.values(parts).reduce((sum, bytes) => sum + bytes, 0),
          parts,
          heldMs: now.heldMs,
        })
      }
      last = now
      return Math.max(0, count)
    },
  }
}

// --- the live client ------------------------------------------------------------------------

interface LiveWatcher {
  /** Frames, ages and gaps recorded from now on only (the load window). */
  startCounting(): void
  stopCounting(): void
  summary(): { frames: number; scopes: string[]; ageMs: Percentiles; gapMs: Percentiles; perScope: object }
  /** Ages of the frames counted since the last call (for a segment). */
  takeSegmentAges(): number[]
  /** Resolves once a site 1-minute bucket starting at or after `t` has been received. */
  bucketAtOrAfter(t: number, timeoutMs: number): Promise<boolean>
  buckets: { t: number; energyWh: number; revision: number }[]
  close(): void
}

interface Percentiles {
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 }
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
  return { count: sorted.length, p50Ms: at(50), p99Ms: at(99), maxMs: sorted[sorted.length - 1]! }
}

async function watchLive(port: number): Promise<LiveWatcher> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${adminToken}`)
  await once(socket, 'open')
  const scopes = [site.id, ...lineScopes]
  let counting = false
  const ages: number[] = []
  let segmentAges: number[] = []
  const gaps: number[] = []
  const lastArrival = new Map<string, number>()
  const perScope = new Map<string, number[]>()
  const buckets: { t: number; energyWh: number; revision: number }[] = []
  const bucketWaiters = new Set<() => void>()
  const subscribed = new Set<string>()
  let allSubscribed = () => {}
  const ready = new Promise<void>((resolvePromise) => {
    allSubscribed = resolvePromise
  })
  socket.on('message', (data) => {
    const arrival = Date.now()
    const frame = JSON.parse(String(data)) as Record<string, unknown>
    if (frame.type === 'subscribed') {
      subscribed.add(String(frame.id))
      if (subscribed.size === scopes.length + 1) allSubscribed()
    } else if (frame.type === 'error') {
      log(`live client: ${JSON.stringify(frame)}`)
    } else if (frame.type === 'live' && counting) {
      const age = arrival - Number(frame.at)
      ages.push(age)
      segmentAges.push(age)
      const scope = String(frame.scope)
      if (!perScope.has(scope)) perScope.set(scope, [])
      perScope.get(scope)!.push(age)
      const last = lastArrival.get(scope)
      if (last !== undefined) gaps.push(arrival - last)
      lastArrival.set(scope, arrival)
    } else if (frame.type === 'bucket') {
      buckets.push({ t: Number(frame.t), energyWh: Number(frame.energyWh), revision: Number(frame.revision) })
      for (const waiter of bucketWaiters) waiter()
    }
  })
  scopes.forEach((scope, i) => {
    socket.send(JSON.stringify({ op: 'subscribe', id: `live-${i}`, channel: 'live', scope }))
  })
  socket.send(JSON.stringify({ op: 'subscribe', id: 'buckets', channel: 'buckets', scope: site.id, step: '1m' }))
  await ready
  return {
    buckets,
    startCounting() {
      counting = true
      lastArrival.clear()
    },
    stopCounting() {
      counting = false
    },
    takeSegmentAges() {
      const taken = segmentAges
      segmentAges = []
      return taken
    },
    summary() {
      return {
        frames: ages.length,
        scopes,
        ageMs: percentiles(ages),
        gapMs: percentiles(gaps),
        perScope: Object.fromEntries([...perScope].map(([scope, values]) => [scope, percentiles(values)])),
      }
    },
    bucketAtOrAfter(t, timeoutMs) {
      const has = () => buckets.some((bucket) => bucket.t >= t)
      if (has()) return Promise.resolve(true)
      return new Promise<boolean>((resolvePromise) => {
        const check = () => {
          if (has()) finish(true)
        }
        const timer = setTimeout(() => finish(false), timeoutMs)
        const finish = (result: boolean) => {
          clearTimeout(timer)
          bucketWaiters.delete(check)
          resolvePromise(result)
        }
        bucketWaiters.add(check)
      })
    },
    close() {
      socket.close()
    },
  }
}

// --- the run ----------------------------------------------------------------------------------

interface Segment {
  atS: number
  connected: number
  ackedPerS: number
  puback: LatencySummary
  liveAge: Percentiles
  loopDelay: LoopDelaySummary
  upCpuPercent: number
  upRssMB: number
  machineCpuPercent: number
  /** The load generator's processes (this one and its workers). */
  generatorCpuPercent: number
  /** The machine's CPU not used by `up` nor the generator: other work on a shared machine. */
  otherCpuPercent: number
  readingsAcceptedPerS: number
  checkpointWrites: number
}

let exitCode = 1
try {
  log('starting plantwatt up')
  up = await startUp()
  log(`up: pid ${up.pid}, mqtt ${up.mqttPort}, http ${up.httpPort}`)
  const upCpuAtStart = treeSum(up.pid, cpuSeconds)
  const pssAtStart = treeSum(up.pid, pssBytes)

  // The payload module runs in the generator workers, which inherit this environment.
  process.env.PLANTWATT_LOAD_PLANT = plantFile
  const localAddresses = Array.from({ length: settings.addresses }, (_, i) => `127.0.0.${i + 2}`)
  const connectStarted = Date.now()
  fleet = await runFleetProcesses({
    devices,
    brokers: [{ host: '127.0.0.1', port: up.mqttPort }],
    deviceSecret,
    workers: settings.workers,
    localAddresses,
    intervalMs: settings.intervalS * 1000,
    qos: 1,
    publishing: false,
    connectRatePerS: settings.connectRatePerS,
    payloadModule: PAYLOAD,
    // A late PUBACK is still an acknowledgement: counted, with its true latency, up to 10 min.
    ackTimeoutMs: 600_000,
    // Each device has at most this many packs without PUBACK; its later turns are skipped (and
    // counted) beyond: a device does not pile up unacknowledged readings without limit.
    maxInflightPerSession: 64,
    maxLifetimeMs: WATCHDOG_MS,
  })
  const allConnected = await fleet.waitFor((stats) => stats.connected === devices.length, 600_000)
  const connectStats = await fleet.refresh(120_000)
  if (!allConnected) throw new Error(`only ${connectStats.connected} of ${devices.length} sessions connected`)
  const connectSeconds = (Date.now() - connectStarted) / 1000
  log(`${devices.length} sessions connected in ${round(connectSeconds)} s`)
  const upCpuAfterConnect = treeSum(up.pid, cpuSeconds)
  const pssIdle = treeSum(up.pid, pssBytes)
  const rssIdle = treeSum(up.pid, rssBytes)

  live = await watchLive(up.httpPort)
  const before = await scrape(up.httpPort)
  let loadStartedAt = Date.now()
  const checkpoints = watchCheckpoints(before.text, () => loadStartedAt)

  // The load window: from the first publish turn to the last.
  let marks = 1
  await markLoop(up.pid, marks)
  await fleet.refresh(120_000)
  const generatorPids = [process.pid, ...fleet.pids]
  const generatorCpu = () => generatorPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const cpuAtLoad = treeSum(up.pid, cpuSeconds)
  const machineAtLoad = machineCpu().busyS
  const generatorAtLoad = generatorCpu()
  const loadWindow = fleet.openLatencyWindow()
  let segmentWindow = fleet.openLatencyWindow()
  loadStartedAt = Date.now()
  live.startCounting()
  await fleet.setPublishing(true)
  log(`load: one pack per device every ${settings.intervalS} s for ${settings.durationS} s`)

  const segments: Segment[] = []
  let previous = {
    atMs: loadStartedAt,
    acked: (await fleet.refresh(120_000)).acked,
    cpu: cpuAtLoad,
    machine: machineAtLoad,
    generator: generatorCpu(),
    accepted: before.sums.get('plantwatt_readings_accepted_total') ?? 0,
  }
  let rssMax = treeSum(up.pid, rssBytes)
  let pssMax = treeSum(up.pid, pssBytes)
  const loadEndsAt = loadStartedAt + settings.durationS * 1000
  while (Date.now() < loadEndsAt) {
    const next = Math.min(loadEndsAt, previous.atMs + SEGMENT_MS)
    await new Promise((resolvePromise) => setTimeout(resolvePromise, Math.max(0, next - Date.now())))
    const stats = await fleet.refresh(120_000)
    const loop = await markLoop(up.pid, ++marks)
    // A starved `up` answers /metrics late; a segment without it still has everything else.
    const metrics = await scrape(up.httpPort).catch((error: Error) => {
      log(`metrics not read this segment: ${error.message}`)
      return undefined
    })
    const nowMs = Date.now()
    const cpu = treeSum(up.pid, cpuSeconds)
    const machine = machineCpu().busyS
    const generator = generatorCpu()
    const rss = treeSum(up.pid, rssBytes)
    rssMax = Math.max(rssMax, rss)
    pssMax = Math.max(pssMax, treeSum(up.pid, pssBytes))
    const accepted = metrics?.sums.get('plantwatt_readings_accepted_total') ?? previous.accepted
    const seconds = (nowMs - previous.atMs) / 1000
    const segment: Segment = {
      atS: round((nowMs - loadStartedAt) / 1000),
      connected: stats.connected,
      ackedPerS: Math.round((stats.acked - previous.acked) / seconds),
      puback: segmentWindow.summary(),
      liveAge: percentiles(live.takeSegmentAges()),
      loopDelay: loop.window,
      upCpuPercent: Math.round((100 * (cpu - previous.cpu)) / seconds),
      upRssMB: mb(rss),
      machineCpuPercent: Math.round((100 * (machine - previous.machine)) / seconds),
      generatorCpuPercent: Math.round((100 * (generator - previous.generator)) / seconds),
      otherCpuPercent: Math.round(
        (100 * (machine - previous.machine - (cpu - previous.cpu) - (generator - previous.generator))) / seconds,
      ),
      readingsAcceptedPerS: Math.round((accepted - previous.accepted) / seconds),
      checkpointWrites: metrics ? checkpoints.seen(metrics.text) : 0,
    }
    segmentWindow.close()
    segmentWindow = fleet.openLatencyWindow()
    segments.push(segment)
    log(
      `${segment.atS} s: acked ${segment.ackedPerS}/s, PUBACK p99 ${segment.puback.p99Ms} ms, live age p99 ${segment.liveAge.p99Ms} ms, ` +
        `loop p99 ${segment.loopDelay.p99Ms} max ${segment.loopDelay.maxMs} ms, up CPU ${segment.upCpuPercent} %, ` +
        `RSS ${segment.upRssMB} MB, machine ${segment.machineCpuPercent} % (other work ${segment.otherCpuPercent} %), checkpoints ${segment.checkpointWrites}`,
    )
    previous = { atMs: nowMs, acked: stats.acked, cpu, machine, generator, accepted }
  }

  await fleet.setPublishing(false)
  const loadEndedAt = Date.now()
  live.stopCounting()
  const loadLoop = await markLoop(up.pid, ++marks)
  const cpuLoad = treeSum(up.pid, cpuSeconds) - cpuAtLoad
  const machineLoad = machineCpu().busyS - machineAtLoad
  const generatorLoad = generatorCpu() - generatorAtLoad
  segmentWindow.close()
  // Publishes in flight at the end get their PUBACK (or time out in the generator, and count).
  const drained = await fleet.waitFor((stats) => stats.inflight === 0, 600_000)
  loadWindow.close()
  const puback = loadWindow.summary()
  const generatorStats = await fleet.stop({ drainMs: 2000, closeMs: 2000 })
  fleet = undefined
  log(`load done: ${generatorStats.published} packs sent, ${generatorStats.acked} acknowledged`)

  // One last pack, dated past the site's latenessS, moves the site clock on so that every
  // 1-minute bucket of the load closes (CONTRACT.md §7) — then the counts below are final.
  const latenessS = site.latenessS ?? 120
  const finalDevice = devices.find(
    (device) => !site.meters?.pv?.includes(device.id) && !site.meters?.grid?.includes(device.id),
  )!
  const finalAtS = Math.ceil(loadEndedAt / 1000) + latenessS + 61
  const finalClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${up.mqttPort}`, {
    clientId: finalDevice.id,
    username: finalDevice.id,
    password: deriveDevicePassword(deviceSecret, finalDevice.id),
    reconnectPeriod: 0,
    // A starved `up` answers late (a run on a busy machine lost its CONNACK to the 30 s default).
    connectTimeout: 300_000,
  })
  await finalClient.publishAsync(
    deviceTopic(site.id, finalDevice.id, 'up'),
    encodeSenmlJson([{ bn: `urn:dev:imei:${finalDevice.id}:`, bt: finalAtS, n: 'power', u: 'W', v: 1000 }]),
    { qos: 1 },
  )
  await finalClient.endAsync()
  const finalPack = { device: finalDevice.id, atS: finalAtS, readings: 1 }

  const lastLoadMinute = Math.floor(loadEndedAt / 60_000) * 60_000
  const bucketsClosed = await live.bucketAtOrAfter(lastLoadMinute, 180_000)
  // The processor has taken every message that was acknowledged (each is in its journal first).
  const packsExpected = generatorStats.acked + 1
  let after = await scrape(up.httpPort)
  const takenBy = Date.now() + 180_000
  while ((after.sums.get('plantwatt_ingest_messages_total') ?? 0) < packsExpected && Date.now() < takenBy) {
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 500))
    after = await scrape(up.httpPort)
  }
  checkpoints.seen(after.text)
  // CPU per pack over everything the load brought in (all of up's processes), taken until the processor had it all.
  const cpuUntilTaken = treeSum(up.pid, cpuSeconds) - cpuAtLoad
  const packsTakenUnderLoad =
    (after.sums.get('plantwatt_ingest_messages_total') ?? 0) - (before.sums.get('plantwatt_ingest_messages_total') ?? 0)
  const upCpuTotal = treeSum(up.pid, cpuSeconds) - upCpuAtStart
  const rssPeak = treeSum(up.pid, peakRssBytes)
  const pssEnd = treeSum(up.pid, pssBytes)
  live.close()
  const liveSummary = live.summary()

  const readingsAcked = generatorStats.acked * READINGS_PER_PACK
  const readingsAccepted = after.sums.get('plantwatt_readings_accepted_total') ?? 0
  const rejectedByReason = metricByLabel(after.text, 'plantwatt_readings_rejected_total', 'reason')
  const readingsRejected = Object.values(rejectedByReason).reduce((sum, count) => sum + count, 0)
  const messagesTaken = after.sums.get('plantwatt_ingest_messages_total') ?? 0
  const lost = {
    readings: Math.max(0, readingsAcked + finalPack.readings - readingsAccepted - readingsRejected),
    packs: Math.max(0, packsExpected - messagesTaken),
  }
  const ok = bucketsClosed && lost.readings === 0 && lost.packs === 0 && readingsRejected === 0

  log('stopping plantwatt up')
  const stopStarted = Date.now()
  up.child.kill('SIGTERM')
  const killTimer = setTimeout(() => up?.child.kill('SIGKILL'), 120_000)
  const upExitCode = await up.exited
  clearTimeout(killTimer)
  const stopSeconds = (Date.now() - stopStarted) / 1000

  const loadSeconds = (loadEndedAt - loadStartedAt) / 1000
  const writes = checkpoints.writes.filter((write) => write.atS >= 0)
  const result = {
    command: `pnpm bench:up-load ${argv.join(' ')}`.trim(),
    date: new Date(startedMs).toISOString(),
    commit: gitCommit(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      memoryGiB: round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      loadAverageAtStart: loadavg().map((value) => round(value, 2)),
    },
    settings: { ...settings, upNodeArgs: settings.upNodeArgs.join(' ') },
    plant: { devices: devices.length, site: site.id, latenessS },
    generator: {
      workers: settings.workers,
      addresses: settings.addresses,
      connected: connectStats.connected,
      connectSeconds: round(connectSeconds),
      connectLatency: connectStats.connectLatency,
      packsDuePerS: round(devices.length / settings.intervalS),
      packsSent: generatorStats.published,
      packsAcked: generatorStats.acked,
      readingsPerPack: READINGS_PER_PACK,
      readingsAcked,
      ackedPerS: round(generatorStats.acked / loadSeconds),
      puback,
      drained,
      unackedAtStop: generatorStats.unackedAtStop,
      inflightLost: generatorStats.inflightLost,
      ackTimeouts: generatorStats.ackTimeouts,
      disconnects: generatorStats.disconnects,
      skipped: generatorStats.skipped,
      errors: generatorStats.errors,
      failures: generatorStats.failures,
      cpuSeconds: round(generatorStats.processes.reduce((sum, p) => sum + (p.cpuUserUs + p.cpuSystemUs) / 1e6, 0)),
    },
    finalPack,
    bucketsClosed,
    sitesBucketsReceived: live.buckets.length,
    processor: {
      messagesTaken,
      readingsAccepted,
      readingsDuplicate: after.sums.get('plantwatt_readings_duplicate_total') ?? 0,
      readingsRejected,
      rejectedByReason,
      bucketRevisions: after.sums.get('plantwatt_bucket_revisions_total') ?? 0,
      storeRowsWritten: after.sums.get('plantwatt_store_rows_written_total') ?? 0,
    },
    lost,
    ok,
    live: liveSummary,
    up: {
      pid: up.pid,
      brokerWorkers: up.brokerWorkers,
      processes: upTree(up.pid).length,
      loadSeconds: round(loadSeconds),
      cpuSecondsUnderLoad: round(cpuLoad, 2),
      cpuSeconds: round(upCpuTotal, 2),
      cpuSecondsConnecting: round(upCpuAfterConnect - upCpuAtStart, 2),
      cpuPercentUnderLoad: Math.round((100 * cpuLoad) / loadSeconds),
      cpuMicrosPerAckedPack: round((cpuLoad * 1e6) / Math.max(1, generatorStats.acked)),
      cpuSecondsUntilTaken: round(cpuUntilTaken, 2),
      cpuMicrosPerPackTaken: round((cpuUntilTaken * 1e6) / Math.max(1, packsTakenUnderLoad)),
      rssIdleMB: mb(rssIdle),
      rssMaxMB: mb(Math.max(rssMax, rssPeak)),
      pssAtStartMB: mb(pssAtStart),
      pssIdleMB: mb(pssIdle),
      pssMaxMB: mb(pssMax),
      pssMB: mb(pssEnd),
      pssPerDeviceKB: round(pssMax / 1024 / devices.length, 2),
      loopDelay: loadLoop.run,
      stopSeconds: round(stopSeconds),
      exitCode: upExitCode,
      logs: up.logCounts,
    },
    machineCpuPercentUnderLoad: Math.round((100 * machineLoad) / loadSeconds),
    generatorCpuPercentUnderLoad: Math.round((100 * generatorLoad) / loadSeconds),
    otherCpuPercentUnderLoad: Math.round((100 * (machineLoad - cpuLoad - generatorLoad)) / loadSeconds),
    checkpoint: {
      writes,
      count: writes.reduce((sum, write) => sum + write.count, 0),
      bytesMax: Math.max(0, ...writes.map((write) => write.bytes)),
      bytesLast: writes.at(-1)?.bytes ?? 0,
      durationMsMax: Math.max(0, ...writes.map((write) => write.durationMs)),
      // The processor's checkpoint metrics at the end (sums over labels), as read.
      metrics: Object.fromEntries(
        [...after.sums].filter(([name]) => name.startsWith('plantwatt_checkpoint_')).map(([n, v]) => [n, v]),
      ),
    },
    segments,
  }
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
  process.stdout.write(summaryText(result))
  log(`written to ${out}`)
  exitCode = ok ? 0 : 1
} catch (error) {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  exitCode = 1
} finally {
  await cleanup()
}
process.exit(exitCode)

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

function summaryText(r: {
  settings: { devices: number; intervalS: number; durationS: number }
  generator: { packsSent: number; packsAcked: number; readingsAcked: number; ackedPerS: number; puback: LatencySummary }
  processor: { readingsAccepted: number; readingsRejected: number }
  lost: { readings: number; packs: number }
  ok: boolean
  bucketsClosed: boolean
  live: { frames: number; ageMs: Percentiles; gapMs: Percentiles }
  up: {
    loopDelay: LoopDelaySummary
    cpuSecondsUnderLoad: number
    cpuPercentUnderLoad: number
    cpuMicrosPerAckedPack: number
    cpuMicrosPerPackTaken: number
    rssMaxMB: number
    pssMaxMB: number
    pssPerDeviceKB: number
  }
  checkpoint: { count: number; bytesMax: number; durationMsMax: number }
  machineCpuPercentUnderLoad: number
  generatorCpuPercentUnderLoad: number
  otherCpuPercentUnderLoad: number
}): string {
  const target = (okay: boolean) => (okay ? 'met' : 'MISSED')
  const p = (s: { p50Ms: number; p99Ms: number; maxMs: number }) =>
    `p50 ${s.p50Ms} / p99 ${s.p99Ms} / max ${s.maxMs} ms`
  return [
    '',
    `plantwatt up under load: ${r.settings.devices} devices, one pack each every ${r.settings.intervalS} s, ${r.settings.durationS} s`,
    `  packs sent / acknowledged      ${r.generator.packsSent} / ${r.generator.packsAcked} (${r.generator.ackedPerS}/s)`,
    `  readings acknowledged          ${r.generator.readingsAcked} (+1 closing the buckets)`,
    `  readings accepted / rejected   ${r.processor.readingsAccepted} / ${r.processor.readingsRejected}`,
    `  nothing lost                   ${r.ok ? 'yes' : `NO: ${JSON.stringify(r.lost)}, buckets closed: ${r.bucketsClosed}`}`,
    `  PUBACK latency                 ${p(r.generator.puback)}  (target p99 < 50 ms: ${target(r.generator.puback.p99Ms < 50)})`,
    `  live frame age                 ${p(r.live.ageMs)} over ${r.live.frames} frames  (target ≤ 1 s: ${target(r.live.ageMs.maxMs <= 1000)})`,
    `  live frame gaps                ${p(r.live.gapMs)}`,
    `  event-loop delay of up         ${p(r.up.loopDelay)}  (target p99 < 20 ms: ${target(r.up.loopDelay.p99Ms < 20)})`,
    `  checkpoints                    ${r.checkpoint.count} written, largest ${mb(r.checkpoint.bytesMax)} MB, slowest ${r.checkpoint.durationMsMax} ms`,
    `  up CPU under load              ${r.up.cpuSecondsUnderLoad} s (${r.up.cpuPercentUnderLoad} % of a core; ${r.up.cpuMicrosPerPackTaken} µs per pack taken)`,
    `  up memory                      RSS max ${r.up.rssMaxMB} MB, PSS max ${r.up.pssMaxMB} MB (${r.up.pssPerDeviceKB} KB per device)`,
    `  machine CPU under load         ${r.machineCpuPercentUnderLoad} % of ${cpus().length * 100} %: generator ${r.generatorCpuPercentUnderLoad} %, other work ${r.otherCpuPercentUnderLoad} %`,
    '',
  ].join('\n')
}
