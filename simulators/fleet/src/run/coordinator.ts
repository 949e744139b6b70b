// Runs simulate or replay jobs in worker processes and makes them one run: one process may
// hold at most about 20,000 descriptors here, and Node gives a process one core. The workers
// open their sessions together, start simulated time together, and at `--speed max` stay
// within `lookaheadS` of the slowest (a horizon the coordinator moves), so the broker sees one
// plant, not several running at different simulated times. Reports add up into one progress.

import { type ChildProcess, fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { TruthJson } from '../model/index.ts'
import {
  addEncodedLatency,
  createLatencyHistogram,
  type LatencySummary,
  summarizeLatency,
} from '../sessions/latency.ts'
import { addStats, emptyStats, type SessionStats } from '../sessions/types.ts'
import type { WorkerProcessInfo } from '../sessions/worker-protocol.ts'
import type { Speed } from './clock.ts'
import type { FromRunWorker, Job, RunWorkerReport, ToRunWorker } from './protocol.ts'

const WORKER_ENTRY = fileURLToPath(new URL('./worker.ts', import.meta.url))
// The workers are TypeScript too: load tsx from this package, wherever the parent's cwd is.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

export type RunPhase = 'starting' | 'connecting' | 'running' | 'draining' | 'done'

export interface RunProgress {
  phase: RunPhase
  workers: number
  devices: number
  /** Simulated start, once known. */
  startS: number | null
  /** Simulated seconds every worker has reached (the slowest). */
  reachedS: number | null
  /**
   * At `--speed X`: simulated seconds the slowest worker is behind the wall-clock schedule,
   * because the sessions could not take the messages (or the workers not make them) in time.
   * 0 at max speed and while on time.
   */
  lagS: number
  /** Wall seconds simulated time stood still waiting for the sessions (the most of any worker). */
  heldS: number
  /** Simulated seconds per wall second over the last second or so (null before running). */
  simulatedPerS: number | null
  /** Messages in the sessions not yet acknowledged, and the bound the workers keep them under. */
  backlog: number
  backlogLimit: number
  /** Messages the simulations made and are not yet due (network latency of the fault model). */
  pendingInSimulation: number
  uplinks: number
  acks: number
  recorded: number
  commandsReceived: number
  downlinksRefused: number
  /** Sum over the workers; null when the run only records. */
  sessions: SessionStats | null
  /** Messages handed to the sessions per second, over the last second or so. */
  messagesPerS: number
  /** PUBACKs per second, over the last second or so. */
  ackedPerS: number
  latency: LatencySummary
  connectLatency: LatencySummary
  processes: WorkerProcessInfo[]
}

export interface FleetWorkersOptions {
  jobs: Job[]
  speed: Speed
  /**
   * Simulated start, decided once every worker is loaded and connected (so that at speed X
   * the first readings are not already late): `readyStartS` is what each worker read (the
   * recording's start for a replay), `nowMs` the wall clock then.
   */
  startS: (nowMs: number, readyStartS: (number | null)[]) => number
  /** At max speed, how far ahead of the slowest worker the others may run. Default 10 s. */
  lookaheadS?: number
  /** How long to wait for every session's CONNACK before starting anyway. Default 120 s. */
  connectTimeoutMs?: number
  onProgress?: (progress: RunProgress) => void
  /** Aborting ends the run early (Ctrl-C): the workers stop producing and drain. */
  signal?: AbortSignal
}

export interface FleetWorkersResult {
  progress: RunProgress
  startS: number
  /** Wall-clock ms: sessions opened, every one connected (or the wait ended), simulated time started, all done. */
  connectStartedMs: number
  connectEndedMs: number
  wallStartMs: number
  /** Wall-clock ms when every worker had produced everything (the drain follows). */
  producedMs: number
  wallEndMs: number
  truths: (TruthJson | null)[]
  /** Highest CPU time and RSS seen per worker. */
  cpuSeconds: number
  maxRssBytes: number
}

interface Worker {
  index: number
  child: ChildProcess
  ready: { devices: number; startS: number | null } | undefined
  last: RunWorkerReport | undefined
  finished: boolean
  truth: TruthJson | null
  exited: boolean
}

export async function runFleetWorkers(options: FleetWorkersOptions): Promise<FleetWorkersResult> {
  const { jobs, speed, onProgress, signal } = options
  const lookaheadS = options.lookaheadS ?? 10
  const connectTimeoutMs = options.connectTimeoutMs ?? 120_000
  if (jobs.length === 0) throw new RangeError('a run needs at least one job')

  const latency = createLatencyHistogram()
  const connectLatency = createLatencyHistogram()
  let phase: RunPhase = 'starting'
  let startS: number | null = null
  let horizonS = Number.NEGATIVE_INFINITY
  let failure: Error | undefined
  let rate = {
    atMs: Date.now(),
    messages: 0,
    acked: 0,
    reachedS: Number.NaN,
    messagesPerS: 0,
    ackedPerS: 0,
    simulatedPerS: null as number | null,
  }
  const maxRss: number[] = jobs.map(() => 0)
  const changed = new Set<() => void>()

  const workers: Worker[] = jobs.map((job, index) => {
    const child = fork(WORKER_ENTRY, [], {
      execArgv: ['--import', TSX_LOADER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Structured clone, not JSON: an unbounded horizon (Infinity) must stay one.
      serialization: 'advanced',
    })
    const worker: Worker = {
      index,
      child,
      ready: undefined,
      last: undefined,
      finished: false,
      truth: null,
      exited: false,
    }
    child.on('message', (message: FromRunWorker) => {
      switch (message.type) {
        case 'ready':
          worker.ready = { devices: message.devices, startS: message.startS }
          break
        case 'failed':
          failure ??= new Error(`fleet worker ${index} failed: ${message.message}`)
          break
        case 'report':
        case 'finished': {
          const { type: _type, ...report } = message
          if (message.type === 'finished') {
            worker.finished = true
            worker.truth = message.truth
            delete (report as { truth?: unknown }).truth
          }
          absorb(worker, report as RunWorkerReport)
          // The worker sends its next report only after this (worker.ts).
          if (message.type === 'report') send(worker, { type: 'reportReceived' })
          break
        }
      }
      for (const listener of changed) listener()
    })
    child.on('exit', (code, signalName) => {
      worker.exited = true
      if (!worker.finished) failure ??= new Error(`fleet worker ${index} exited (code ${code}, signal ${signalName})`)
      for (const listener of changed) listener()
    })
    send(worker, { type: 'start', job })
    return worker
  })

  function send(worker: Worker, message: ToRunWorker): void {
    if (!worker.exited && worker.child.connected) worker.child.send(message)
  }

  function absorb(worker: Worker, report: RunWorkerReport): void {
    worker.last = report
    maxRss[worker.index] = Math.max(maxRss[worker.index]!, report.process.rssBytes)
    if (report.latency) addEncodedLatency(latency, report.latency)
    if (report.connectLatency) addEncodedLatency(connectLatency, report.connectLatency)
    if (speed === 'max' && phase === 'running' && Number.isFinite(horizonS)) moveHorizon()
    const now = Date.now()
    if (now - rate.atMs >= 1000) {
      const progress = aggregate()
      const messages = progress.uplinks + progress.acks
      const acked = progress.sessions?.acked ?? 0
      const seconds = (now - rate.atMs) / 1000
      const reachedS = phase === 'running' && progress.reachedS !== null ? progress.reachedS : Number.NaN
      rate = {
        atMs: now,
        messages,
        acked,
        reachedS,
        messagesPerS: (messages - rate.messages) / seconds,
        ackedPerS: (acked - rate.acked) / seconds,
        simulatedPerS: Number.isNaN(reachedS - rate.reachedS) ? null : (reachedS - rate.reachedS) / seconds,
      }
      onProgress?.(aggregate())
    }
  }

  function moveHorizon(): void {
    let slowest = Number.POSITIVE_INFINITY
    for (const worker of workers) {
      if (worker.last && !worker.last.produced) slowest = Math.min(slowest, worker.last.settledS)
    }
    if (!Number.isFinite(slowest)) return
    const next = slowest + lookaheadS
    if (next <= horizonS) return
    horizonS = next
    for (const worker of workers) send(worker, { type: 'horizon', horizonS })
  }

  function aggregate(): RunProgress {
    let sessions: SessionStats | null = null
    const sum = { uplinks: 0, acks: 0, recorded: 0, commandsReceived: 0, downlinksRefused: 0 }
    let reachedS = Number.POSITIVE_INFINITY
    let lagS = 0
    let heldS = 0
    let backlogLimit = 0
    let pendingInSimulation = 0
    const processes: WorkerProcessInfo[] = []
    let devices = 0
    for (const worker of workers) {
      devices += worker.ready?.devices ?? 0
      const report = worker.last
      if (!report) continue
      for (const key of Object.keys(sum) as (keyof typeof sum)[]) sum[key] += report[key]
      if (report.sessions) {
        sessions ??= emptyStats()
        addStats(sessions, report.sessions)
      }
      reachedS = Math.min(reachedS, report.reachedS)
      lagS = Math.max(lagS, report.lagS)
      heldS = Math.max(heldS, report.heldWallS)
      backlogLimit += report.backlogLimit
      pendingInSimulation += report.pendingInSimulation
      processes.push(report.process)
    }
    const connectedEverywhere = workers.every((worker) => (worker.last?.sessions?.allConnectedAt ?? 0) > 0)
    if (sessions) {
      sessions.sessions = devices
      sessions.allConnectedAt = connectedEverywhere
        ? Math.max(...workers.map((worker) => worker.last!.sessions!.allConnectedAt))
        : 0
    }
    return {
      phase,
      workers: workers.length,
      devices,
      startS,
      reachedS: Number.isFinite(reachedS) ? reachedS : null,
      lagS,
      heldS,
      simulatedPerS: rate.simulatedPerS,
      backlog: sessions ? sessions.queued + sessions.inflight : 0,
      backlogLimit,
      pendingInSimulation,
      ...sum,
      sessions,
      messagesPerS: rate.messagesPerS,
      ackedPerS: rate.ackedPerS,
      latency: summarizeLatency(latency),
      connectLatency: summarizeLatency(connectLatency),
      processes,
    }
  }

  /** Resolves once `done()` holds; rejects as soon as a worker fails. */
  function until(done: () => boolean, timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (failure) finish(() => reject(failure))
        else if (done()) finish(() => resolve(true))
      }
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => finish(() => resolve(false)), timeoutMs) : undefined
      const finish = (settle: () => void) => {
        clearTimeout(timer)
        changed.delete(check)
        signal?.removeEventListener('abort', check)
        settle()
      }
      changed.add(check)
      signal?.addEventListener('abort', check)
      check()
    })
  }

  const aborted = () => signal?.aborted === true
  try {
    await until(() => workers.every((worker) => worker.ready !== undefined) || aborted())
    phase = 'connecting'
    const connectStartedMs = Date.now()
    for (const worker of workers) send(worker, { type: 'connect' })
    const hasSessions = jobs.some((job) => job.sessions !== null)
    if (hasSessions) {
      await until(() => {
        const sessions = aggregate().sessions
        return aborted() || (sessions !== null && sessions.allConnectedAt > 0)
      }, connectTimeoutMs)
    }
    const connectEndedMs = Date.now()

    phase = 'running'
    const wallStartMs = Date.now()
    startS = options.startS(
      wallStartMs,
      workers.map((worker) => worker.ready!.startS),
    )
    // One worker needs no horizon; several at max speed move within lookaheadS of the slowest.
    horizonS = speed === 'max' && workers.length > 1 ? startS + lookaheadS : Number.POSITIVE_INFINITY
    for (const worker of workers) send(worker, { type: 'begin', startS, wallStartMs, horizonS })
    if (aborted()) for (const worker of workers) send(worker, { type: 'finish' })
    else {
      signal?.addEventListener('abort', () => {
        for (const worker of workers) send(worker, { type: 'finish' })
      })
    }

    let producedMs = Number.NaN
    await until(() => {
      if (phase === 'running' && workers.every((worker) => worker.last?.produced)) {
        phase = 'draining'
        producedMs = Date.now()
      }
      return workers.every((worker) => worker.finished)
    })
    if (Number.isNaN(producedMs)) producedMs = Date.now()
    phase = 'done'
    const progress = aggregate()
    onProgress?.(progress)
    const cpuSeconds = progress.processes.reduce((sum, p) => sum + (p.cpuUserUs + p.cpuSystemUs) / 1e6, 0)
    return {
      progress,
      startS,
      connectStartedMs,
      connectEndedMs,
      wallStartMs,
      producedMs,
      wallEndMs: Date.now(),
      truths: workers.map((worker) => worker.truth),
      cpuSeconds,
      maxRssBytes: Math.max(...maxRss),
    }
  } finally {
    for (const worker of workers) if (!worker.exited && !worker.finished) worker.child.kill('SIGKILL')
  }
}
