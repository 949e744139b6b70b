// Session benchmark of issue #3 (DESIGN.md "Goals"): how many authenticated device sessions a
// broker holds on this machine, how fast they connect, and what they cost in memory and CPU at
// idle and at one 4-record SenML pack per device per second at QoS 1.
//
//   node --import tsx services/broker/bench/sessions.ts --shape single --devices 19000 --duration 60
//   node --import tsx services/broker/bench/sessions.ts --shape cluster --cluster-devices 40000
//   pnpm bench:broker --help
//
// Shape "single": one plantwatt broker process, then Debian's Mosquitto, one after the other
// (never at once: one machine), each holding the same N devices with their own passwords.
// Shape "cluster": N devices over several plantwatt broker processes joined on a redis-server.
// The load comes from the fleet simulator's session engine, spread over worker processes and
// source addresses (one process may hold at most 20,000 descriptors here; one source address
// has about 28,000 ports towards one destination port). Broker memory and CPU are read from
// /proc. Prints a table and writes the figures as JSON.

import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  type LoopDelaySummary,
  loopDelayMarkFile,
  requestLoopDelayMark,
} from '../../../packages/runtime/src/loop-delay.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import {
  type BrokerAddress,
  type FleetDevice,
  type FleetProcesses,
  type FleetStats,
  fleetDevicesOf,
  runFleetProcesses,
} from '../../../simulators/fleet/src/sessions/index.ts'
// Tools reaching other workspaces by path: the broker service may not depend on the simulator
// (DESIGN.md "Layout"), but its benchmark needs the simulator's load generator and plant.
import { startRedis } from '../../../test/support/redis-server.ts'
import { startBrokerProcesses } from './broker-processes.ts'
import { startMosquitto } from './mosquitto.ts'
import { cpuSeconds, machineCpu, rssBytes, sumOf } from './proc.ts'

const HELP = `Usage: node --import tsx services/broker/bench/sessions.ts [options]

  --shape single|cluster|both   single: one plantwatt broker process, then Mosquitto (default single)
  --devices N                   sessions for shape single (default 19000)
  --targets LIST                shape single: plantwatt,mosquitto (default both)
  --cluster-devices N           sessions for shape cluster (default 40000)
  --brokers K                   broker processes for shape cluster (default: one per 15,000 devices)
  --workers W                   load generator processes (default: one per 10,000 sessions, at least 2)
  --addresses A                 source addresses 127.0.0.2… (default: one per 5,000 sessions, at least 2)
  --duration S                  seconds measured under load (default 60)
  --idle S                      seconds measured at idle, all connected (default 10)
  --warmup S                    seconds of load before measuring (default 5)
  --interval-ms MS              each device's publish interval (default 1000)
  --connect-rate R              connects per second offered by the generator (default 5000)
  --connect-in-flight C         connects awaiting CONNACK at once, whole generator (default 200)
  --connect-timeout S           longest wait for all sessions to connect (default 180)
  --quiet-wait S                longest wait for a quiet machine before each target (default 180)
  --broker-node-args ARGS       Node options for the plantwatt broker processes, e.g.
                                "--cpu-prof --cpu-prof-dir=/tmp/prof" or "--heapsnapshot-signal=SIGUSR2"
  --journal                     plantwatt: append every uplink to an ingest journal (fdatasync before
                                PUBACK) in a temporary directory, as \`plantwatt up\` does
  --out FILE                    JSON results (default .plantwatt/bench/broker-sessions-<shape>-<time>.json)
`

// `pnpm bench:broker -- --devices 2000` passes the `--` on: drop it.
const argv = process.argv.slice(2)
if (argv[0] === '--') argv.shift()
const { values } = parseArgs({
  args: argv,
  options: {
    shape: { type: 'string', default: 'single' },
    devices: { type: 'string', default: '19000' },
    targets: { type: 'string', default: 'plantwatt,mosquitto' },
    'cluster-devices': { type: 'string', default: '40000' },
    brokers: { type: 'string' },
    workers: { type: 'string' },
    addresses: { type: 'string' },
    duration: { type: 'string', default: '60' },
    idle: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    'interval-ms': { type: 'string', default: '1000' },
    'connect-rate': { type: 'string', default: '5000' },
    'connect-in-flight': { type: 'string', default: '200' },
    'connect-timeout': { type: 'string', default: '180' },
    seed: { type: 'string', default: '1' },
    'quiet-wait': { type: 'string', default: '180' },
    'broker-node-args': { type: 'string', default: '' },
    journal: { type: 'boolean', default: false },
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
    console.error(`--${name} must be an integer from ${min} to ${max}, got ${text}\n\n${HELP}`)
    process.exit(2)
  }
  return value
}

const shape = values.shape
if (shape !== 'single' && shape !== 'cluster' && shape !== 'both') {
  console.error(`--shape must be single, cluster or both\n\n${HELP}`)
  process.exit(2)
}
const settings = {
  devices: int('devices', values.devices, 1, 100_000),
  clusterDevices: int('cluster-devices', values['cluster-devices'], 1, 100_000),
  durationS: int('duration', values.duration, 1, 3600),
  idleS: int('idle', values.idle, 1, 600),
  warmupS: int('warmup', values.warmup, 0, 600),
  intervalMs: int('interval-ms', values['interval-ms'], 10, 3_600_000),
  connectRatePerS: int('connect-rate', values['connect-rate'], 1, 1_000_000),
  connectsInFlight: int('connect-in-flight', values['connect-in-flight'], 1, 100_000),
  connectTimeoutS: int('connect-timeout', values['connect-timeout'], 1, 3600),
  seed: int('seed', values.seed, 0, 2 ** 31),
  quietWaitS: int('quiet-wait', values['quiet-wait'], 0, 3600),
  brokerNodeArgs: values['broker-node-args'].split(' ').filter((arg) => arg !== ''),
  journal: values.journal,
}
const targets = values.targets.split(',').map((target) => target.trim())
for (const target of targets) {
  if (target !== 'plantwatt' && target !== 'mosquitto') {
    console.error(`--targets takes plantwatt and/or mosquitto, got ${target}`)
    process.exit(2)
  }
}

/** Workers, source addresses and cluster brokers for a number of sessions. */
function layout(devices: number) {
  return {
    workers: values.workers ? int('workers', values.workers, 1, 64) : Math.max(2, Math.ceil(devices / 10_000)),
    addresses: values.addresses ? int('addresses', values.addresses, 1, 250) : Math.max(2, Math.ceil(devices / 5000)),
    brokers: values.brokers ? int('brokers', values.brokers, 1, 16) : Math.max(2, Math.ceil(devices / 15_000)),
  }
}

// ---------------------------------------------------------------------------------------------

interface RunningTarget {
  brokers: BrokerAddress[]
  /** The broker processes: their memory and CPU are the figures. */
  brokerPids: number[]
  /** Beside them (redis-server for the cluster): reported on their own. */
  sidePids: number[]
  /** Resolves with what went wrong with the broker processes (bad exits). */
  stop(): Promise<string[]>
}

interface Target {
  name: string
  shape: 'single' | 'cluster'
  devices: FleetDevice[]
  brokerProcesses: number
  /** Node broker processes answer event-loop delay marks (Mosquitto does not). */
  measuresLoopDelay: boolean
  start(secret: string): Promise<RunningTarget>
}

interface LoadSegment {
  fromS: number
  toS: number
  ackedPerS: number
  pubackP50Ms: number
  pubackP99Ms: number
  pubackMaxMs: number
  brokerCpuPct: number
  /** The whole machine, all cores (200 % = both cores busy). */
  machineCpuPct: number
  brokerRssMB: number
  /** Publishes without PUBACK at the end of the segment. */
  inflight: number
}

const SEGMENT_S = 10

function segmentLine(segment: LoadSegment): string {
  return `${segment.fromS}-${segment.toS} s: ${segment.ackedPerS} acked/s, PUBACK p50 ${segment.pubackP50Ms} ms, p99 ${segment.pubackP99Ms} ms, max ${segment.pubackMaxMs} ms, broker CPU ${segment.brokerCpuPct} %, machine ${segment.machineCpuPct} % of 200, RSS ${segment.brokerRssMB} MB, in flight ${segment.inflight}`
}

interface TargetResult {
  target: string
  shape: 'single' | 'cluster'
  devices: number
  brokerProcesses: number
  generatorProcesses: number
  sourceAddresses: number
  /** Whether the machine was nearly idle (under 10 % of a core for 3 s) before this target started. */
  machineQuietBefore: boolean
  connect: {
    allConnected: boolean
    connected: number
    seconds: number
    ratePerS: number
    attempts: number
    connackP50Ms: number
    connackP99Ms: number
  }
  memory: {
    beforeMB: number
    idleMB: number
    loadMaxMB: number
    loadEndMB: number
    /** Resident memory at idle divided by the connected devices (everything the broker holds). */
    idleKBPerDevice: number
    /** Growth from before the first connect to idle, per connected device (what a session adds). */
    addedKBPerDevice: number
    loadKBPerDevice: number
    sideIdleMB: number
    sideLoadMaxMB: number
  }
  cpu: {
    /** Percent of one core, summed over the broker processes. */
    idlePct: number
    loadPct: number
    /** Broker CPU (all its processes) per acknowledged pack during the load window, µs. */
    usPerPack: number
    sideIdlePct: number
    sideLoadPct: number
    /** The load generator's worker processes, during the load window. */
    generatorLoadPct: number
    /** The whole machine during the load window (200 % = both cores busy). */
    machineLoadPct: number
    /**
     * Machine CPU not used by the brokers, Redis, the generator or this process: softirq work
     * (on loopback, TCP of both ends partly lands there) and anything else running meanwhile.
     */
    unaccountedLoadPct: number
    stealLoadPct: number
  }
  load: {
    seconds: number
    offeredPerS: number
    publishedPerS: number
    ackedPerS: number
    recordsAckedPerS: number
    pubackP50Ms: number
    pubackP90Ms: number
    pubackP99Ms: number
    pubackP999Ms: number
    pubackMaxMs: number
    segments: LoadSegment[]
  }
  /**
   * Event-loop delay of each plantwatt broker process over the load window (issue 13), measured
   * inside it (packages/runtime/bench/loop-delay-preload.ts); absent for Mosquitto.
   */
  eventLoopDelay?: LoopDelaySummary[]
  errors: {
    refused: Record<string, number>
    connectErrors: number
    connectTimeouts: number
    disconnects: number
    socketErrors: Record<string, number>
    protocolErrors: number
    inflightLost: number
    ackTimeouts: number
    unackedAtStop: number
    skipped: FleetStats['skipped']
    workerFailures: string[]
    /** Broker processes that died, or did not stop cleanly after the run. */
    brokerProblems: string[]
  }
}

const MB = 1024 * 1024
// The broker processes (broker-processes.ts loads the preload) answer loop-delay marks here.
const LOOP_DELAY_DIR = mkdtempSync(join(tmpdir(), 'plantwatt-bench-loop-delay-'))
process.env.PLANTWATT_LOOP_DELAY_DIR = LOOP_DELAY_DIR
process.on('exit', () => rmSync(LOOP_DELAY_DIR, { recursive: true, force: true }))
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

function progress(stats: FleetStats): string {
  return `connected ${stats.connected}/${stats.sessions}, connecting ${stats.connecting}, refused ${JSON.stringify(stats.refused)}, errors ${JSON.stringify(stats.errors)}, published ${stats.published}, acked ${stats.acked}, inflight ${stats.inflight}`
}

/** Samples broker RSS every second for `seconds`, printing progress if `fleet` is given; returns the largest sample. */
async function hold(seconds: number, pids: number[], sidePids: number[], fleet?: FleetProcesses) {
  let maxRss = 0
  let maxSideRss = 0
  const until = Date.now() + seconds * 1000
  let lastLog = 0
  while (Date.now() < until) {
    maxRss = Math.max(maxRss, sumOf(pids, rssBytes))
    maxSideRss = Math.max(maxSideRss, sumOf(sidePids, rssBytes))
    if (fleet && Date.now() - lastLog >= 10_000) {
      lastLog = Date.now()
      log(progress(fleet.stats()))
    }
    await sleep(Math.min(1000, Math.max(0, until - Date.now())))
  }
  return { maxRss, maxSideRss }
}

/** Waits (bounded) until the brokers use under 5 % of a core: done with what was sent. */
async function quiet(pids: number[], timeoutS: number): Promise<void> {
  const until = Date.now() + timeoutS * 1000
  let before = sumOf(pids, cpuSeconds)
  while (Date.now() < until) {
    await sleep(1000)
    const now = sumOf(pids, cpuSeconds)
    if (now - before < 0.05) return
    before = now
  }
}

/**
 * Waits (bounded) until the machine has been nearly idle for 3 s: a compiler or a test run of
 * someone else on the same two cores would otherwise be measured as the broker's slowness.
 */
async function quietMachine(timeoutS: number): Promise<boolean> {
  const until = Date.now() + timeoutS * 1000
  let before = machineCpu().busyS
  while (Date.now() < until) {
    await sleep(3000)
    const now = machineCpu().busyS
    if (now - before < 0.3) return true
    before = now
  }
  return false
}

async function measure(target: Target, secret: string): Promise<TargetResult> {
  const n = target.devices.length
  const quietBefore = await quietMachine(settings.quietWaitS)
  if (!quietBefore) log(`${target.name}: the machine is busy with other work; measuring anyway`)
  const { workers, addresses } = layout(n)
  const localAddresses = Array.from({ length: addresses }, (_, k) => `127.0.0.${k + 2}`)
  log(`${target.name}: starting ${target.brokerProcesses} broker process(es) for ${n} devices`)
  const running = await target.start(secret)
  const { brokerPids, sidePids } = running
  let fleet: FleetProcesses | undefined
  let result: TargetResult | undefined
  try {
    await sleep(2000)
    const beforeRss = sumOf(brokerPids, rssBytes)

    log(`${target.name}: connecting ${n} sessions from ${workers} processes and ${addresses} source addresses`)
    fleet = await runFleetProcesses({
      devices: target.devices,
      brokers: running.brokers,
      deviceSecret: secret,
      workers,
      localAddresses,
      publishing: false,
      intervalMs: settings.intervalMs,
      qos: 1,
      keepaliveS: 120,
      connectRatePerS: settings.connectRatePerS,
      // Kept below the brokers' listen backlogs (Mosquitto's is 100): a dropped SYN costs a
      // 1 s retransmission, and the connect rate would measure that.
      maxConnectsInFlight: settings.connectsInFlight,
      connectTimeoutMs: 30_000,
      backoff: { initialMs: 1000, maxMs: 10_000 },
      // The workers outlive nothing: the whole run plus a margin.
      maxLifetimeMs: (settings.connectTimeoutS + settings.idleS + settings.warmupS + settings.durationS + 120) * 1000,
    })
    const connectLogger = setInterval(() => log(progress(fleet!.stats())), 5000)
    const allConnected = await fleet.waitFor((stats) => stats.allConnectedAt > 0, settings.connectTimeoutS * 1000)
    clearInterval(connectLogger)
    const connectedStats = await fleet.refresh()
    const connectSeconds = allConnected
      ? (connectedStats.allConnectedAt - connectedStats.firstConnectAt) / 1000
      : (connectedStats.lastConnackAt - connectedStats.firstConnectAt) / 1000
    log(`${target.name}: ${progress(connectedStats)} after ${round(connectSeconds)} s`)

    // Idle: all sessions up, keep-alive only.
    await sleep(3000)
    const idleCpu0 = sumOf(brokerPids, cpuSeconds)
    const sideCpu0 = sumOf(sidePids, cpuSeconds)
    const idleStart = Date.now()
    await hold(settings.idleS, brokerPids, sidePids, fleet)
    const idleWall = (Date.now() - idleStart) / 1000
    const idleCpuPct = ((sumOf(brokerPids, cpuSeconds) - idleCpu0) / idleWall) * 100
    const sideIdleCpuPct = ((sumOf(sidePids, cpuSeconds) - sideCpu0) / idleWall) * 100
    const idleRss = sumOf(brokerPids, rssBytes)
    const sideIdleRss = sumOf(sidePids, rssBytes)
    const connected = (await fleet.refresh()).connected

    // Load: one pack per device per interval, each session at its own phase of the interval.
    log(`${target.name}: publishing, ${settings.warmupS} s warm-up, then ${settings.durationS} s measured`)
    await fleet.setPublishing(true)
    await sleep(settings.warmupS * 1000)
    const loadStart = await fleet.refresh()
    const loopDelayPids = target.measuresLoopDelay ? brokerPids : []
    for (const pid of loopDelayPids) await requestLoopDelayMark(pid, loopDelayMarkFile(LOOP_DELAY_DIR, pid), 1)
    const overall = fleet.openLatencyWindow()
    const loadCpu0 = sumOf(brokerPids, cpuSeconds)
    const sideLoadCpu0 = sumOf(sidePids, cpuSeconds)
    const machine0 = machineCpu()
    const self0 = process.cpuUsage()
    const loadT0 = Date.now()
    const loadUntil = loadT0 + settings.durationS * 1000
    // The load window in segments of 10 s: a broker that falls behind and catches up (or not)
    // shows it here, where one figure for the minute would hide it.
    const segments: LoadSegment[] = []
    let maxRss = 0
    let maxSideRss = 0
    let segmentStats = loadStart
    let segmentCpu = loadCpu0
    let segmentT0 = loadT0
    let segmentMachine = machine0.busyS
    const maxSegments = Math.ceil(settings.durationS / SEGMENT_S) + 1
    while (Date.now() < loadUntil && segments.length < maxSegments) {
      const window = fleet.openLatencyWindow()
      const held = await hold(
        (Math.min(loadUntil, segmentT0 + SEGMENT_S * 1000) - Date.now()) / 1000,
        brokerPids,
        sidePids,
      )
      maxRss = Math.max(maxRss, held.maxRss)
      maxSideRss = Math.max(maxSideRss, held.maxSideRss)
      const stats = await fleet.refresh()
      window.close()
      const t = Date.now()
      const cpu = sumOf(brokerPids, cpuSeconds)
      const machine = machineCpu().busyS
      const seconds = (t - segmentT0) / 1000
      const latency = window.summary()
      const segment: LoadSegment = {
        fromS: round((segmentT0 - loadT0) / 1000),
        toS: round((t - loadT0) / 1000),
        ackedPerS: Math.round((stats.acked - segmentStats.acked) / seconds),
        pubackP50Ms: latency.p50Ms,
        pubackP99Ms: latency.p99Ms,
        pubackMaxMs: latency.maxMs,
        brokerCpuPct: round(((cpu - segmentCpu) / seconds) * 100),
        machineCpuPct: round(((machine - segmentMachine) / seconds) * 100),
        brokerRssMB: round(sumOf(brokerPids, rssBytes) / MB),
        inflight: stats.inflight,
      }
      segments.push(segment)
      log(`${target.name}: ${segmentLine(segment)}`)
      segmentStats = stats
      segmentCpu = cpu
      segmentMachine = machine
      segmentT0 = t
    }
    overall.close()
    const eventLoopDelay: LoopDelaySummary[] = []
    for (const pid of loopDelayPids) {
      eventLoopDelay.push((await requestLoopDelayMark(pid, loopDelayMarkFile(LOOP_DELAY_DIR, pid), 2)).run)
    }
    const loadEnd = segmentStats
    const loadWall = (segmentT0 - loadT0) / 1000
    const loadCpuPct = ((segmentCpu - loadCpu0) / loadWall) * 100
    const sideLoadCpuPct = ((sumOf(sidePids, cpuSeconds) - sideLoadCpu0) / loadWall) * 100
    const machine1 = machineCpu()
    const self1 = process.cpuUsage(self0)
    const loadEndRss = sumOf(brokerPids, rssBytes)
    const generatorCpu = (stats: FleetStats) =>
      stats.processes.reduce((sum, process) => sum + process.cpuUserUs + process.cpuSystemUs, 0) / 1e6
    const generatorLoadPct = ((generatorCpu(loadEnd) - generatorCpu(loadStart)) / loadWall) * 100
    const machineLoadPct = ((segmentMachine - machine0.busyS) / loadWall) * 100
    const selfLoadPct = ((self1.user + self1.system) / 1e6 / loadWall) * 100

    await fleet.setPublishing(false)
    const final = await fleet.stop({ drainMs: 5000, closeMs: 5000 })
    fleet = undefined
    log(`${target.name}: stopped; ${progress(final)}`)

    const perDevice = (bytes: number) => (connected > 0 ? round(bytes / connected / 1024, 2) : 0)
    const window = overall.summary()
    result = {
      target: target.name,
      shape: target.shape,
      devices: n,
      brokerProcesses: brokerPids.length,
      generatorProcesses: workers,
      sourceAddresses: addresses,
      machineQuietBefore: quietBefore,
      connect: {
        allConnected,
        connected: connectedStats.connected,
        seconds: round(connectSeconds, 2),
        ratePerS: connectSeconds > 0 ? Math.round(connectedStats.connected / connectSeconds) : 0,
        attempts: connectedStats.connectAttempts,
        connackP50Ms: connectedStats.connectLatency.p50Ms,
        connackP99Ms: connectedStats.connectLatency.p99Ms,
      },
      memory: {
        beforeMB: round(beforeRss / MB),
        idleMB: round(idleRss / MB),
        loadMaxMB: round(maxRss / MB),
        loadEndMB: round(loadEndRss / MB),
        idleKBPerDevice: perDevice(idleRss),
        addedKBPerDevice: perDevice(idleRss - beforeRss),
        loadKBPerDevice: perDevice(maxRss),
        sideIdleMB: round(sideIdleRss / MB),
        sideLoadMaxMB: round(maxSideRss / MB),
      },
      cpu: {
        idlePct: round(idleCpuPct),
        loadPct: round(loadCpuPct),
        usPerPack:
          loadEnd.acked > loadStart.acked
            ? round(((segmentCpu - loadCpu0) * 1e6) / (loadEnd.acked - loadStart.acked))
            : 0,
        sideIdlePct: round(sideIdleCpuPct),
        sideLoadPct: round(sideLoadCpuPct),
        generatorLoadPct: round(generatorLoadPct),
        machineLoadPct: round(machineLoadPct),
        unaccountedLoadPct: round(machineLoadPct - loadCpuPct - sideLoadCpuPct - generatorLoadPct - selfLoadPct),
        stealLoadPct: round(((machine1.stealS - machine0.stealS) / loadWall) * 100),
      },
      load: {
        seconds: round(loadWall),
        offeredPerS: Math.round((n * 1000) / settings.intervalMs),
        publishedPerS: Math.round((loadEnd.published - loadStart.published) / loadWall),
        ackedPerS: Math.round((loadEnd.acked - loadStart.acked) / loadWall),
        recordsAckedPerS: Math.round(((loadEnd.acked - loadStart.acked) * 4) / loadWall),
        pubackP50Ms: window.p50Ms,
        pubackP90Ms: window.p90Ms,
        pubackP99Ms: window.p99Ms,
        pubackP999Ms: window.p999Ms,
        pubackMaxMs: window.maxMs,
        segments,
      },
      eventLoopDelay: target.measuresLoopDelay ? eventLoopDelay : undefined,
      errors: {
        refused: final.refused,
        connectErrors: final.connectErrors,
        connectTimeouts: final.connectTimeouts,
        disconnects: final.disconnects,
        socketErrors: final.errors,
        protocolErrors: final.protocolErrors,
        inflightLost: final.inflightLost,
        ackTimeouts: final.ackTimeouts,
        unackedAtStop: final.unackedAtStop,
        skipped: final.skipped,
        workerFailures: final.failures,
        brokerProblems: [],
      },
    }
  } finally {
    await fleet?.stop({ drainMs: 0, closeMs: 2000 })
    // A saturated broker still works through its backlog after the sessions are gone; stopping
    // it in the middle of that measures its shutdown under load, which is not this benchmark.
    await quiet(brokerPids, 60)
    const problems = await running.stop()
    if (result) result.errors.brokerProblems = problems
    // Let the kernel finish closing the sessions before the next target starts.
    await sleep(3000)
  }
  return result
}

// ---------------------------------------------------------------------------------------------

function devicesFor(count: number): FleetDevice[] {
  return fleetDevicesOf(generatePlant({ devices: count, seed: settings.seed }))
}

function plantwattSingle(devices: FleetDevice[]): Target {
  return {
    name: 'plantwatt',
    shape: 'single',
    devices,
    brokerProcesses: 1,
    measuresLoopDelay: true,
    async start(secret) {
      const brokers = await startBrokerProcesses({
        count: 1,
        devices: devices.length,
        seed: settings.seed,
        secret,
        nodeArgs: settings.brokerNodeArgs,
        journal: settings.journal,
      })
      return { brokers: brokers.addresses, brokerPids: brokers.pids, sidePids: [], stop: brokers.stop }
    },
  }
}

function mosquitto(devices: FleetDevice[]): Target {
  return {
    name: 'mosquitto',
    shape: 'single',
    devices,
    brokerProcesses: 1,
    measuresLoopDelay: false,
    async start(secret) {
      const running = await startMosquitto({ devices, deviceSecret: secret })
      return {
        brokers: [{ host: '127.0.0.1', port: running.port }],
        brokerPids: [running.pid],
        sidePids: [],
        stop: running.stop,
      }
    },
  }
}

function plantwattCluster(devices: FleetDevice[], count: number): Target {
  return {
    name: `plantwatt cluster (${count} brokers + redis)`,
    shape: 'cluster',
    devices,
    brokerProcesses: count,
    measuresLoopDelay: true,
    async start(secret) {
      const redis = await startRedis()
      try {
        const brokers = await startBrokerProcesses({
          count,
          devices: devices.length,
          seed: settings.seed,
          secret,
          redisUrl: redis.url,
        })
        const redisPid = redisPidOf()
        return {
          brokers: brokers.addresses,
          brokerPids: brokers.pids,
          sidePids: redisPid ? [redisPid] : [],
          async stop() {
            const problems = await brokers.stop()
            await redis.stop()
            return problems
          },
        }
      } catch (error) {
        await redis.stop()
        throw error
      }
    },
  }
}

/** The redis-server that this process started (startRedis does not hand out its pid). */
function redisPidOf(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (command === 'redis-server' && parent === process.pid) return Number(entry)
    } catch {
      // gone meanwhile
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------

function table(results: TargetResult[]): string {
  const rows: [string, (result: TargetResult) => string | number][] = [
    ['devices (sessions)', (r) => r.devices],
    ['broker processes', (r) => r.brokerProcesses],
    ['connected', (r) => `${r.connect.connected}${r.connect.allConnected ? '' : ' (not all)'}`],
    ['connect time, s', (r) => r.connect.seconds],
    ['connect rate, /s', (r) => r.connect.ratePerS],
    ['CONNACK p50 / p99, ms', (r) => `${r.connect.connackP50Ms} / ${r.connect.connackP99Ms}`],
    ['RSS before, MB', (r) => r.memory.beforeMB],
    ['RSS idle, MB', (r) => r.memory.idleMB],
    ['RSS under load (max), MB', (r) => r.memory.loadMaxMB],
    ['RSS per device idle, KB', (r) => r.memory.idleKBPerDevice],
    ['RSS added per session, KB', (r) => r.memory.addedKBPerDevice],
    ['RSS per device under load, KB', (r) => r.memory.loadKBPerDevice],
    ['CPU idle, % of a core', (r) => r.cpu.idlePct],
    ['CPU under load, % of a core', (r) => r.cpu.loadPct],
    ['CPU per acked pack, µs', (r) => r.cpu.usPerPack],
    ['offered packs/s', (r) => r.load.offeredPerS],
    ['acked packs/s', (r) => r.load.ackedPerS],
    ['acked records/s', (r) => r.load.recordsAckedPerS],
    ['PUBACK p50 / p99, ms', (r) => `${r.load.pubackP50Ms} / ${r.load.pubackP99Ms}`],
    ['PUBACK p99.9 / max, ms', (r) => `${r.load.pubackP999Ms} / ${r.load.pubackMaxMs}`],
    [
      'redis RSS idle / load, MB',
      (r) => (r.shape === 'cluster' ? `${r.memory.sideIdleMB} / ${r.memory.sideLoadMaxMB}` : '-'),
    ],
    ['redis CPU idle / load, %', (r) => (r.shape === 'cluster' ? `${r.cpu.sideIdlePct} / ${r.cpu.sideLoadPct}` : '-')],
    [
      'event-loop delay p50 / p99 / max, ms',
      (r) =>
        r.eventLoopDelay?.map((d) => `${d.p50Ms} / ${d.p99Ms} / ${d.maxMs}`).join('; ') ?? '- (not a Node process)',
    ],
    ['generator CPU under load, %', (r) => r.cpu.generatorLoadPct],
    ['machine CPU under load, % of 200', (r) => r.cpu.machineLoadPct],
    ['  of which not the benchmark, %', (r) => r.cpu.unaccountedLoadPct],
    ['refused (by CONNACK code)', (r) => JSON.stringify(r.errors.refused)],
    ['connect errors / timeouts', (r) => `${r.errors.connectErrors} / ${r.errors.connectTimeouts}`],
    ['disconnects', (r) => r.errors.disconnects],
    [
      'lost in flight / ack timeouts / unacked',
      (r) => `${r.errors.inflightLost} / ${r.errors.ackTimeouts} / ${r.errors.unackedAtStop}`,
    ],
    ['skipped turns', (r) => JSON.stringify(r.errors.skipped)],
    ['broker process problems', (r) => r.errors.brokerProblems.join('; ') || 'none'],
  ]
  const header = ['', ...results.map((r) => r.target)]
  const body = rows.map(([label, cell]) => [label, ...results.map((r) => String(cell(r)))])
  const widths = header.map((_, k) => Math.max(...[header, ...body].map((row) => row[k]!.length)))
  const line = (row: string[]) => `| ${row.map((cell, k) => cell.padEnd(widths[k]!)).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n')
}

// ---------------------------------------------------------------------------------------------

const plan: Target[] = []
if (shape === 'single' || shape === 'both') {
  const devices = devicesFor(settings.devices)
  if (targets.includes('plantwatt')) plan.push(plantwattSingle(devices))
  if (targets.includes('mosquitto')) plan.push(mosquitto(devices))
}
if (shape === 'cluster' || shape === 'both') {
  plan.push(plantwattCluster(devicesFor(settings.clusterDevices), layout(settings.clusterDevices).brokers))
}

// Bounded: every phase has its own limit; this is the backstop for the whole run.
const perTargetS = settings.connectTimeoutS + settings.idleS + settings.warmupS + settings.durationS + 180
const watchdog = setTimeout(
  () => {
    console.error(`[bench] gave up after ${plan.length * perTargetS} s`)
    process.exit(1)
  },
  plan.length * perTargetS * 1000,
)
watchdog.unref()

const startedAt = new Date()
// Other work on the machine skews every figure: keep the load before the run with them.
const loadBefore = loadavg().map((value) => round(value, 2))
const command = `node --import tsx services/broker/bench/sessions.ts ${argv.join(' ')}`.trim()
const secret = randomBytes(24).toString('hex')
const results: TargetResult[] = []
for (const target of plan) results.push(await measure(target, secret))

const report = {
  date: startedAt.toISOString(),
  command,
  machine: {
    cores: availableParallelism(),
    memoryGiB: round(totalmem() / 1024 ** 3),
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    loadAverageBefore: loadBefore,
  },
  settings,
  results,
}
const out = resolve(
  values.out ??
    join('.plantwatt', 'bench', `broker-sessions-${shape}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`),
)
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`)
const segmentText = results
  .map((result) =>
    [`${result.target}, under load:`, ...result.load.segments.map((segment) => `  ${segmentLine(segment)}`)].join('\n'),
  )
  .join('\n')
process.stdout.write(
  `\n${command}\n${startedAt.toISOString()}, ${report.machine.cores} cores, ${report.machine.memoryGiB} GiB, ${report.machine.cpu}, Linux ${report.machine.kernel}, Node ${report.machine.node}\n\n${table(results)}\n\n${segmentText}\n\nJSON: ${out}\n`,
)
process.exit(0)
