// Fleet benchmark of issue #4: the whole plant's fleet simulated on this machine, every device its
// own authenticated MQTT session, one SenML pack per device per second at QoS 1, for minutes, against
// several Debian Mosquitto instances on distinct ports (one process may hold at most 20,000
// descriptors here, so no single broker can hold 40,000 sessions).
//
//   node --import tsx simulators/fleet/bench/fleet-run.ts --devices 40000 --duration 600 --brokers 3
//   pnpm bench:fleet --help
//
// Reports connect time, packs/s achieved against packs/s due, PUBACK latency, the simulator's CPU
// and memory (all its processes), and the brokers' CPU and memory read from /proc. Prints a table
// and writes the figures as JSON.

import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startLoopDelayMonitor } from '../../../packages/runtime/src/loop-delay.ts'
// Tools reaching other workspaces by path, as the broker's benchmark does: Mosquitto's start-up
// and /proc readings are shared bench code, not part of any service.
import { startMosquitto } from '../../../services/broker/bench/mosquitto.ts'
import { cpuSeconds, machineCpu, rssBytes, sumOf } from '../../../services/broker/bench/proc.ts'
import { generatePlant } from '../src/plant-generator.ts'
import { FAULT_PRESETS, type RunProgress, simulate } from '../src/run/index.ts'
import { fleetDevicesOf } from '../src/sessions/index.ts'

const HELP = `Usage: node --import tsx simulators/fleet/bench/fleet-run.ts [options]

  --devices N        devices of the generated plant (default 40000)
  --seed S           plant and simulation seed (default 1)
  --duration S       simulated seconds at 1x (default 600)
  --brokers K        Mosquitto instances on distinct ports (default: one per 15,000 devices)
  --workers W        simulator worker processes (default: one per 10,000 devices)
  --faults PRESET    none or nbiot (default none: every device awake, one pack a second)
  --connect-rate R   connects per second over the fleet (default 2000)
  --out FILE         JSON results (default .plantwatt/bench/fleet-<devices>-<time>.json)
`

const argv = process.argv.slice(2)
if (argv[0] === '--') argv.shift()
const { values } = parseArgs({
  args: argv,
  options: {
    devices: { type: 'string', default: '40000' },
    seed: { type: 'string', default: '1' },
    duration: { type: 'string', default: '600' },
    brokers: { type: 'string' },
    workers: { type: 'string' },
    faults: { type: 'string', default: 'none' },
    'connect-rate': { type: 'string', default: '2000' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  process.stdout.write(HELP)
  process.exit(0)
}

const positive = (name: string, text: string | undefined): number => {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`--${name} must be a positive integer, got ${text}`)
  return value
}
const deviceCount = positive('devices', values.devices)
const durationS = positive('duration', values.duration)
const brokerCount = values.brokers ? positive('brokers', values.brokers) : Math.ceil(deviceCount / 15_000)
const faults = FAULT_PRESETS[values.faults]
if (!faults) throw new RangeError(`--faults must be one of ${Object.keys(FAULT_PRESETS).join(', ')}`)
const out = resolve(
  values.out ?? `.plantwatt/bench/fleet-${deviceCount}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
)

const log = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`)

const plant = generatePlant({ devices: deviceCount, seed: positive('seed', values.seed) })
const devices = fleetDevicesOf(plant)
const deviceSecret = randomBytes(16).toString('hex')
log(`starting ${brokerCount} Mosquitto instances, each knowing all ${devices.length} device passwords`)
const brokers = await Promise.all(Array.from({ length: brokerCount }, () => startMosquitto({ devices, deviceSecret })))
const brokerPids = brokers.map((broker) => broker.pid)

/** Per 10 s of the run: what was offered and acknowledged, and what it cost. */
interface Segment {
  atS: number
  phase: string
  connected: number
  packsPerS: number
  ackedPerS: number
  /** Simulated seconds behind the wall clock (the sessions held the simulation back), and the backlog. */
  lagS: number
  backlog: number
  /** Over the run so far (the coordinator keeps one histogram). */
  pubackP99MsSoFar: number
  simulatorCpuPercent: number
  simulatorRssMB: number
  brokersCpuPercent: number
  brokersRssMB: number
  machineCpuPercent: number
}
const segments: Segment[] = []
let last:
  | { atMs: number; uplinks: number; acked: number; simCpuS: number; brokerCpuS: number; machineS: number }
  | undefined
let connectedAtMs: number | null = null
const startedMs = Date.now()
// The simulator's processes (this coordinator and its workers) are read from /proc like the
// brokers, at the same moment, so that the shares add up.
const simulatorPids = (progress: RunProgress) => [process.pid, ...progress.processes.map((p) => p.pid)]

function onProgress(progress: RunProgress): void {
  const nowMs = Date.now()
  const connected = progress.sessions?.connected ?? 0
  if (connectedAtMs === null && connected >= devices.length) connectedAtMs = nowMs
  const sample = {
    atMs: nowMs,
    uplinks: progress.uplinks,
    acked: progress.sessions?.acked ?? 0,
    simCpuS: sumOf(simulatorPids(progress), cpuSeconds),
    brokerCpuS: sumOf(brokerPids, cpuSeconds),
    machineS: machineCpu().busyS,
  }
  if (last === undefined) last = sample
  if (nowMs - last.atMs < 10_000) return
  const seconds = (nowMs - last.atMs) / 1000
  const segment: Segment = {
    atS: Math.round((nowMs - startedMs) / 1000),
    phase: progress.phase,
    connected,
    packsPerS: Math.round((sample.uplinks - last.uplinks) / seconds),
    ackedPerS: Math.round((sample.acked - last.acked) / seconds),
    lagS: Math.round(progress.lagS * 10) / 10,
    backlog: progress.backlog,
    pubackP99MsSoFar: progress.latency.p99Ms,
    simulatorCpuPercent: Math.round((100 * (sample.simCpuS - last.simCpuS)) / seconds),
    simulatorRssMB: Math.round(sumOf(simulatorPids(progress), rssBytes) / 2 ** 20),
    brokersCpuPercent: Math.round((100 * (sample.brokerCpuS - last.brokerCpuS)) / seconds),
    brokersRssMB: Math.round(sumOf(brokerPids, rssBytes) / 2 ** 20),
    machineCpuPercent: Math.round((100 * (sample.machineS - last.machineS)) / seconds),
  }
  segments.push(segment)
  log(JSON.stringify(segment))
  last = sample
}

const controller = new AbortController()
process.once('SIGINT', () => controller.abort())
let summary: Awaited<ReturnType<typeof simulate>>
// Event-loop delay of this coordinator process (issue 13), which paces the run and gathers the
// workers' reports; the brokers here are Mosquitto (not Node), the workers report their own counters.
const loopDelay = startLoopDelayMonitor()
try {
  summary = await simulate({
    plant,
    seed: positive('seed', values.seed),
    durationS,
    speed: 1,
    faults,
    connection: {
      brokers: brokers.map((broker) => ({ host: '127.0.0.1', port: broker.port })),
      deviceSecret,
      connectRatePerS: positive('connect-rate', values['connect-rate']),
    },
    workers: values.workers ? positive('workers', values.workers) : undefined,
    onProgress,
    signal: controller.signal,
  })
} finally {
  const problems = (await Promise.all(brokers.map((broker) => broker.stop()))).flat()
  for (const problem of problems) log(problem)
}

const coordinatorEventLoopDelay = loopDelay.summary()
loopDelay.stop()
const running = segments.filter((segment) => segment.phase === 'running' && segment.connected >= devices.length)
const mean = (pick: (segment: Segment) => number) =>
  running.length === 0 ? 0 : Math.round(running.reduce((sum, segment) => sum + pick(segment), 0) / running.length)
const result = {
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
    mosquitto: execFileSync('dpkg-query', ['-W', '-f=${Version}', 'mosquitto'], { encoding: 'utf8' }),
  },
  date: new Date().toISOString(),
  devices: devices.length,
  brokers: brokerCount,
  durationS,
  packsDuePerS: devices.length,
  steady: {
    segments: running.length,
    packsPerS: mean((s) => s.packsPerS),
    ackedPerS: mean((s) => s.ackedPerS),
    simulatorCpuPercent: mean((s) => s.simulatorCpuPercent),
    brokersCpuPercent: mean((s) => s.brokersCpuPercent),
    machineCpuPercent: mean((s) => s.machineCpuPercent),
    simulatorRssMBMax: Math.max(0, ...running.map((s) => s.simulatorRssMB)),
    brokersRssMBMax: Math.max(0, ...running.map((s) => s.brokersRssMB)),
  },
  allConnectedAfterS: connectedAtMs === null ? null : (connectedAtMs - startedMs) / 1000,
  coordinatorEventLoopDelay,
  summary,
  segments,
}
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
process.stdout.write(`${JSON.stringify({ ...result, segments: undefined }, null, 2)}\n`)
log(`written to ${out}`)
