// The ceiling ladder of issue 16: one set of device sessions (19,000 by default: what one
// Mosquitto process holds here), the offered rate raised step by step until the target falls
// behind, for `plantwatt up` and then for Debian's Mosquitto relaying QoS 1 to one subscriber —
// the same generator (the fleet simulator's session engine), the same plant, the same sessions.
//
// A device waits for its PUBACK before its next pack (one in flight per session, as an NB-IoT
// device does): a target that cannot keep up shows as turns skipped, so the acknowledged rate
// drops below the offered one, and as PUBACK latency.
//
// Falling behind, for one step: acknowledged < 95 % of offered, or PUBACK p99 over 1 s. The
// ceiling is the highest offered rate of a step that did not fall behind (0 if the first did).

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PlantModel } from '@plantwatt/contract'
import { type FleetProcesses, fleetDevicesOf, type LatencySummary, runFleetProcesses } from '@plantwatt/fleet'
import { cpuSeconds, machineCpu, rssBytes, sumOf } from '../../broker/bench/proc.ts'
import { relayConfig, startRelayMosquitto } from './relay-mosquitto.ts'
import { processTree, startUpChild } from './up-process.ts'

export type LadderTargetName = 'plantwatt' | 'mosquitto'

export interface LadderOptions {
  plant: PlantModel
  /** Offered packs per second of each step, rising. */
  rates: readonly number[]
  stepS: number
  /** Seconds at each new rate before the step's window opens (the transition is not measured). */
  warmupS: number
  workers: number
  addresses: number
  connectRatePerS: number
  targets: readonly LadderTargetName[]
  /** Keep climbing after a step fell behind (default: stop there). */
  continueAfterBehind?: boolean
  log: (text: string) => void
}

export interface LadderStep {
  offeredPerS: number
  intervalMs: number
  seconds: number
  publishedPerS: number
  ackedPerS: number
  /** Turns skipped because the device still waited for its previous PUBACK, per second. */
  skippedPerS: number
  puback: LatencySummary
  /**
   * Packs passed on per second: for Mosquitto, received by its one subscriber; for `plantwatt up`,
   * taken by its processor from the journal (`plantwatt_ingest_messages_total`; null when its
   * /metrics did not answer). Not part of the behind rule, which is about acknowledgements.
   */
  deliveredPerS: number | null
  /** Percent of one core, all the target's processes. */
  targetCpuPercent: number
  /** Target CPU over the step divided by the packs acknowledged in it. */
  targetCpuMicrosPerPack: number
  targetRssMB: number
  /** The generator's processes and this one (which also holds Mosquitto's subscriber). */
  generatorCpuPercent: number
  machineCpuPercent: number
  otherCpuPercent: number
  behind: boolean
  why: string[]
}

export interface LadderTargetResult {
  target: LadderTargetName
  sessions: number
  connected: number
  connectSeconds: number
  processes: number
  /** Highest offered rate of a step that kept pace (0: none did). */
  ceilingPerS: number
  /** Highest acknowledged rate of any step. */
  maxAckedPerS: number
  /** Target CPU per pack at the ceiling's step (or the first step when none kept pace). */
  cpuMicrosPerPackAtCeiling: number
  steps: LadderStep[]
  /** Mosquitto's generated config; `plantwatt up`'s broker workers. */
  config?: string[]
  brokerWorkers?: number
  problems: string[]
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const BEHIND_ACKED_SHARE = 0.95
export const BEHIND_P99_MS = 1000

/** Why a step fell behind (empty: it kept pace). Pure, for the summary and its test. */
export function behindReasons(step: { offeredPerS: number; ackedPerS: number; puback: { p99Ms: number } }): string[] {
  const why: string[] = []
  if (step.ackedPerS < BEHIND_ACKED_SHARE * step.offeredPerS) {
    why.push(`acknowledged ${step.ackedPerS}/s < 95 % of ${step.offeredPerS}/s`)
  }
  if (step.puback.p99Ms > BEHIND_P99_MS) why.push(`PUBACK p99 ${step.puback.p99Ms} ms > 1 s`)
  return why
}

interface RunningTarget {
  port: number
  pids: () => number[]
  /** Packs passed on so far (see LadderStep.deliveredPerS); null if it cannot be read now. */
  delivered: () => Promise<number | null>
  config?: string[]
  brokerWorkers?: number
  stop(): Promise<string[]>
}

/** The processor's `plantwatt_ingest_messages_total` (summed over labels), null if not read in 30 s. */
async function ingestedMessages(httpPort: number): Promise<number | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(30_000) })
    let sum: number | null = null
    for (const match of (await response.text()).matchAll(/^plantwatt_ingest_messages_total(?:\{[^}]*\})?\s+(\S+)$/gm)) {
      sum = (sum ?? 0) + Number(match[1])
    }
    return sum
  } catch {
    return null
  }
}

async function startTarget(name: LadderTargetName, plant: PlantModel, deviceSecret: string): Promise<RunningTarget> {
  if (name === 'mosquitto') {
    const relay = await startRelayMosquitto()
    return {
      port: relay.port,
      pids: () => [relay.pid],
      delivered: async () => relay.relayed(),
      config: relayConfig(relay.port),
      stop: relay.stop,
    }
  }
  const work = await mkdtemp(join(tmpdir(), 'plantwatt-bench-ladder-'))
  const plantFile = join(work, 'plant.json')
  await writeFile(plantFile, JSON.stringify(plant))
  const up = await startUpChild({
    plantFile,
    dataDir: join(work, 'data'),
    deviceSecret,
    adminToken: randomBytes(32).toString('hex'),
  })
  return {
    port: up.mqttPort,
    pids: () => processTree(up.pid),
    delivered: () => ingestedMessages(up.httpPort),
    brokerWorkers: up.brokerWorkers,
    async stop() {
      const code = await up.stop()
      await rm(work, { recursive: true, force: true })
      const problems = code === 0 ? [] : [`plantwatt up exited with ${code}`]
      const logged = Object.entries(up.logCounts).map(([line, count]) => `${count}× ${line}`)
      return [...problems, ...logged]
    },
  }
}

async function climb(name: LadderTargetName, options: LadderOptions): Promise<LadderTargetResult> {
  const { log } = options
  const devices = fleetDevicesOf(options.plant)
  const deviceSecret = randomBytes(32).toString('hex')
  log(`ladder ${name}: starting, ${devices.length} sessions`)
  const target = await startTarget(name, options.plant, deviceSecret)
  let fleet: FleetProcesses | undefined
  const problems: string[] = []
  const steps: LadderStep[] = []
  let connected = 0
  let connectSeconds = 0
  let processes = 0
  try {
    const connectStarted = Date.now()
    const longestMs = (options.rates.length * (options.stepS + options.warmupS) + 1200) * 1000
    fleet = await runFleetProcesses({
      devices,
      brokers: [{ host: '127.0.0.1', port: target.port }],
      deviceSecret,
      workers: options.workers,
      localAddresses: Array.from({ length: options.addresses }, (_, i) => `127.0.0.${i + 2}`),
      // Set per step below; nothing is published until then.
      intervalMs: 1000,
      publishing: false,
      qos: 1,
      keepaliveS: 120,
      connectRatePerS: options.connectRatePerS,
      connectTimeoutMs: 30_000,
      backoff: { initialMs: 1000, maxMs: 10_000 },
      maxInflightPerSession: 1,
      // A late PUBACK is still one: counted with its true latency up to 2 minutes.
      ackTimeoutMs: 120_000,
      maxLifetimeMs: longestMs,
    })
    const all = await fleet.waitFor((stats) => stats.connected === devices.length, 600_000)
    const stats = await fleet.refresh(120_000)
    connected = stats.connected
    connectSeconds = round((Date.now() - connectStarted) / 1000)
    processes = target.pids().length
    if (!all) throw new Error(`only ${stats.connected} of ${devices.length} sessions connected`)
    log(`ladder ${name}: ${connected} sessions connected in ${connectSeconds} s`)

    const generatorPids = [process.pid, ...fleet.pids]
    for (const rate of options.rates) {
      const intervalMs = (devices.length * 1000) / rate
      await fleet.setPublishing(true, intervalMs)
      await sleep(options.warmupS * 1000)
      const before = await fleet.refresh(120_000)
      const window = fleet.openLatencyWindow()
      const t0 = Date.now()
      const targetCpu0 = sumOf(target.pids(), cpuSeconds)
      const generatorCpu0 = sumOf(generatorPids, cpuSeconds)
      const machine0 = machineCpu().busyS
      const delivered0 = await target.delivered()
      await sleep(options.stepS * 1000)
      const after = await fleet.refresh(120_000)
      window.close()
      const seconds = (Date.now() - t0) / 1000
      const delivered1 = await target.delivered()
      const targetCpu = sumOf(target.pids(), cpuSeconds) - targetCpu0
      const generatorCpu = sumOf(generatorPids, cpuSeconds) - generatorCpu0
      const machine = machineCpu().busyS - machine0
      const acked = after.acked - before.acked
      const skipped = after.skipped.inflightFull - before.skipped.inflightFull
      const puback = window.summary()
      const measured = {
        offeredPerS: rate,
        intervalMs: round(intervalMs),
        seconds: round(seconds),
        publishedPerS: Math.round((after.published - before.published) / seconds),
        ackedPerS: Math.round(acked / seconds),
        skippedPerS: Math.round(skipped / seconds),
        puback,
        deliveredPerS:
          delivered0 === null || delivered1 === null ? null : Math.round((delivered1 - delivered0) / seconds),
        targetCpuPercent: Math.round((100 * targetCpu) / seconds),
        targetCpuMicrosPerPack: round((targetCpu * 1e6) / Math.max(1, acked)),
        targetRssMB: round(sumOf(target.pids(), rssBytes) / 2 ** 20),
        generatorCpuPercent: Math.round((100 * generatorCpu) / seconds),
        machineCpuPercent: Math.round((100 * machine) / seconds),
        otherCpuPercent: Math.round((100 * (machine - targetCpu - generatorCpu)) / seconds),
      }
      const why = behindReasons(measured)
      const step: LadderStep = { ...measured, behind: why.length > 0, why }
      steps.push(step)
      log(
        `ladder ${name} ${rate}/s: acked ${step.ackedPerS}/s, PUBACK p99 ${puback.p99Ms} ms, ` +
          `${step.targetCpuMicrosPerPack} µs CPU per pack (${step.targetCpuPercent} % of a core), generator ${step.generatorCpuPercent} %, ` +
          `other work ${step.otherCpuPercent} %, passed on ${step.deliveredPerS ?? '?'}/s${step.behind ? ` — behind: ${why.join('; ')}` : ''}`,
      )
      if (step.behind && !options.continueAfterBehind) break
    }
    await fleet.setPublishing(false)
    await fleet.waitFor((s) => s.inflight === 0, 120_000)
    const final = await fleet.stop({ drainMs: 2000, closeMs: 2000 })
    fleet = undefined
    if (final.failures.length > 0) problems.push(...final.failures)
    if (final.disconnects > 0) problems.push(`${final.disconnects} sessions lost their connection`)
    if (final.ackTimeouts > 0) problems.push(`${final.ackTimeouts} PUBACKs never came (2 min limit)`)
  } finally {
    await fleet?.stop({ drainMs: 0, closeMs: 500 }).catch(() => undefined)
    problems.push(...(await target.stop()))
  }
  const kept = steps.filter((step) => !step.behind)
  const best = kept.at(-1)
  return {
    target: name,
    sessions: devices.length,
    connected,
    connectSeconds,
    processes,
    ceilingPerS: best?.offeredPerS ?? 0,
    maxAckedPerS: Math.max(0, ...steps.map((step) => step.ackedPerS)),
    cpuMicrosPerPackAtCeiling: (best ?? steps[0])?.targetCpuMicrosPerPack ?? 0,
    steps,
    ...(target.config ? { config: target.config } : {}),
    ...(target.brokerWorkers === undefined ? {} : { brokerWorkers: target.brokerWorkers }),
    problems,
  }
}

export interface LadderResult {
  sessions: number
  rates: number[]
  stepS: number
  warmupS: number
  criterion: string
  targets: LadderTargetResult[]
  /** plantwatt's ceiling / Mosquitto's, and CPU per pack the other way round (null: not both run). */
  ceilingRatio: number | null
  cpuPerPackRatio: number | null
}

/** Runs the ladder on each target in turn (never both at once: one machine). */
export async function runLadder(options: LadderOptions): Promise<LadderResult> {
  const targets: LadderTargetResult[] = []
  for (const name of options.targets) targets.push(await climb(name, options))
  const plantwatt = targets.find((t) => t.target === 'plantwatt')
  const mosquitto = targets.find((t) => t.target === 'mosquitto')
  const both = plantwatt && mosquitto
  return {
    sessions: fleetDevicesOf(options.plant).length,
    rates: [...options.rates],
    stepS: options.stepS,
    warmupS: options.warmupS,
    criterion: `behind when acknowledged < ${BEHIND_ACKED_SHARE * 100} % of offered or PUBACK p99 > ${BEHIND_P99_MS} ms; one pack in flight per device`,
    targets,
    ceilingRatio: both && mosquitto.ceilingPerS > 0 ? round(plantwatt.ceilingPerS / mosquitto.ceilingPerS, 2) : null,
    cpuPerPackRatio:
      both && mosquitto.cpuMicrosPerPackAtCeiling > 0
        ? round(plantwatt.cpuMicrosPerPackAtCeiling / mosquitto.cpuMicrosPerPackAtCeiling, 2)
        : null,
  }
}
