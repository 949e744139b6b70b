// Spreads a fleet's sessions over worker processes: one process may hold at most about 20,000
// descriptors on these machines, and one core per process is what Node gives. The workers report
// over IPC once a second; the parent adds their counters and latency histograms up, so the
// fleet reports as one.

import { type ChildProcess, fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { SessionEngineOptions } from './engine.ts'
import { addEncodedLatency, createLatencyHistogram, type LatencySummary, summarizeLatency } from './latency.ts'
import { addStats, type BrokerAddress, emptyStats, type FleetDevice, type SessionStats } from './types.ts'
import type { FromWorker, ToWorker, WorkerProcessInfo, WorkerReport } from './worker-protocol.ts'

type EngineTuning = Omit<
  SessionEngineOptions,
  'devices' | 'brokers' | 'deviceSecret' | 'localAddresses' | 'payload' | 'now' | 'random'
>

export interface FleetProcessesOptions extends EngineTuning {
  devices: readonly FleetDevice[]
  /** Sessions are assigned to brokers round-robin over the whole fleet (unless a device names one). */
  brokers: readonly BrokerAddress[]
  deviceSecret: string
  /** Worker processes; each gets a contiguous slice of the devices. Keep slices under ~19,000. */
  workers: number
  /** Source addresses to bind (127.0.0.2, 127.0.0.3, …), shared round-robin by all workers. */
  localAddresses?: readonly string[]
  /** For the whole fleet: each worker opens its share (rate / workers). Default 1000. */
  connectRatePerS?: number
  /** For the whole fleet, split like the rate. Default 200 per worker. */
  maxConnectsInFlight?: number
  /** See WorkerEngineOptions.payloadModule. */
  payloadModule?: string
  /** Default 1000. */
  reportIntervalMs?: number
  /** Workers stop by themselves after this long, whatever happens to the parent. Default 1 h. */
  maxLifetimeMs?: number
  /** Default 30,000: time for every worker to load and start. */
  startTimeoutMs?: number
  /** Called after each worker report is added in. */
  onReport?: (stats: FleetStats) => void
}

export interface FleetStats extends SessionStats {
  workers: number
  /** Workers that exited or failed before stop(), with the reason. */
  failures: string[]
  processes: WorkerProcessInfo[]
  /** Publish → PUBACK latency since start. */
  latency: LatencySummary
  /** TCP connect → CONNACK 0 latency since start. */
  connectLatency: LatencySummary
}

export interface FleetProcesses {
  readonly pids: readonly number[]
  /** The latest aggregate (at most one report interval old). */
  stats(): FleetStats
  /** Asks every worker for a report now and returns the fresh aggregate. */
  refresh(timeoutMs?: number): Promise<FleetStats>
  /**
   * Starts or stops publishing in every worker; resolves once every worker has applied it.
   * `intervalMs`: each session's publish interval from now on (see SessionEngine.setPublishing).
   */
  setPublishing(on: boolean, intervalMs?: number): Promise<void>
  /**
   * Starts collecting publish → PUBACK latencies reported from now on, apart from the rest (a
   * benchmark's load phase, or each 10 s of it). Call refresh() first for a sharp start.
   */
  openLatencyWindow(): LatencyWindow
  /** Resolves true once `predicate` holds for the aggregate, false after `timeoutMs`. */
  waitFor(predicate: (stats: FleetStats) => boolean, timeoutMs: number): Promise<boolean>
  /** Stops every worker cleanly (see SessionEngine.stop), killing any that does not exit in time. */
  stop(options?: { drainMs?: number; closeMs?: number }): Promise<FleetStats>
}

export interface LatencyWindow {
  summary(): LatencySummary
  /** Stops collecting; summary() keeps answering. */
  close(): void
}

interface Worker {
  index: number
  child: ChildProcess
  last: WorkerReport | undefined
  started: boolean
  stopped: boolean
  exited: Promise<void>
  hasExited: boolean
}

const WORKER_ENTRY = fileURLToPath(new URL('./worker.ts', import.meta.url))
// The workers are TypeScript too: load tsx from this package, wherever the parent's cwd is.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

export async function runFleetProcesses(options: FleetProcessesOptions): Promise<FleetProcesses> {
  const {
    devices,
    brokers,
    deviceSecret,
    localAddresses,
    payloadModule,
    onReport,
    workers: requestedWorkers,
    reportIntervalMs = 1000,
    maxLifetimeMs = 3_600_000,
    startTimeoutMs = 30_000,
    connectRatePerS = 1000,
    maxConnectsInFlight,
    ...tuning
  } = options
  if (brokers.length === 0) throw new RangeError('at least one broker address is needed')
  const count = Math.max(1, Math.min(Math.floor(requestedWorkers), devices.length))
  if (!Number.isFinite(count)) throw new RangeError(`workers must be a positive integer, got ${requestedWorkers}`)

  const total = createLatencyHistogram()
  const windows = new Set<ReturnType<typeof createLatencyHistogram>>()
  const connectLatency = createLatencyHistogram()
  const failures: string[] = []
  const listeners = new Set<() => void>()
  let stopping = false
  let seq = 0
  const pending = new Map<number, { waiting: Set<number>; resolve: () => void }>()

  const aggregate = (): FleetStats => {
    const sum = emptyStats()
    let allConnectedAt = 0
    let everyWorkerConnected = true
    const processes: WorkerProcessInfo[] = []
    for (const worker of workers) {
      const stats = worker.last?.stats
      if (!stats) {
        everyWorkerConnected = false
        continue
      }
      addStats(sum, stats)
      processes.push(worker.last!.process)
      if (stats.allConnectedAt === 0) everyWorkerConnected = false
      allConnectedAt = Math.max(allConnectedAt, stats.allConnectedAt)
    }
    sum.sessions = devices.length
    sum.allConnectedAt = everyWorkerConnected ? allConnectedAt : 0
    return {
      ...sum,
      workers: workers.length,
      failures: [...failures],
      processes,
      latency: summarizeLatency(total),
      connectLatency: summarizeLatency(connectLatency),
    }
  }

  const absorb = (worker: Worker, report: WorkerReport) => {
    worker.last = report
    addEncodedLatency(total, report.latency)
    for (const histogram of windows) addEncodedLatency(histogram, report.latency)
    addEncodedLatency(connectLatency, report.connectLatency)
    for (const listener of listeners) listener()
    onReport?.(aggregate())
  }

  const size = Math.ceil(devices.length / count)
  const workers: Worker[] = []
  const startedPromises: Promise<void>[] = []
  for (let w = 0; w < count; w++) {
    const first = w * size
    const slice = devices.slice(first, first + size).map((device, k) => ({
      id: device.id,
      site: device.site,
      broker: device.broker ?? (first + k) % brokers.length,
    }))
    const child = fork(WORKER_ENTRY, [], {
      execArgv: ['--import', TSX_LOADER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    let markExited = () => {}
    const worker: Worker = {
      index: w,
      child,
      last: undefined,
      started: false,
      stopped: false,
      hasExited: false,
      exited: new Promise<void>((resolve) => {
        markExited = resolve
      }),
    }
    workers.push(worker)
    let startedResolve = () => {}
    let startedReject = (_error: Error) => {}
    startedPromises.push(
      new Promise<void>((resolve, reject) => {
        startedResolve = resolve
        startedReject = reject
      }),
    )
    child.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'started':
          worker.started = true
          startedResolve()
          return
        case 'failed':
          failures.push(`worker ${w}: ${message.message}`)
          startedReject(new Error(`fleet worker ${w} failed: ${message.message}`))
          return
        case 'report':
        case 'stopped': {
          const { type: _type, ...report } = message
          if (message.type === 'stopped') worker.stopped = true
          absorb(worker, report as WorkerReport)
          if (message.type === 'report' && message.seq !== null) {
            const waiter = pending.get(message.seq)
            waiter?.waiting.delete(w)
            if (waiter?.waiting.size === 0) waiter.resolve()
          }
          return
        }
      }
    })
    child.on('exit', (code, signal) => {
      worker.hasExited = true
      if (!stopping) failures.push(`worker ${w} exited (code ${code}, signal ${signal})`)
      startedReject(new Error(`fleet worker ${w} exited before it started (code ${code}, signal ${signal})`))
      for (const waiter of pending.values()) {
        waiter.waiting.delete(w)
        if (waiter.waiting.size === 0) waiter.resolve()
      }
      markExited()
    })
    const start: ToWorker = {
      type: 'start',
      options: {
        ...tuning,
        devices: slice,
        brokers,
        deviceSecret,
        localAddresses,
        payloadModule,
        connectRatePerS: connectRatePerS / count,
        maxConnectsInFlight: Math.max(1, Math.floor((maxConnectsInFlight ?? 200 * count) / count)),
      },
      reportIntervalMs,
      maxLifetimeMs,
    }
    child.send(start)
  }

  const killAll = async () => {
    for (const worker of workers) if (!worker.hasExited) worker.child.kill('SIGKILL')
    await Promise.all(workers.map((worker) => worker.exited))
  }

  try {
    await withTimeout(Promise.all(startedPromises), startTimeoutMs, 'fleet workers did not start in time')
  } catch (error) {
    stopping = true
    await killAll()
    throw error
  }

  const live = () => workers.filter((worker) => !worker.hasExited)
  const send = (worker: Worker, message: ToWorker) => {
    if (!worker.hasExited && worker.child.connected) worker.child.send(message)
  }
  // Loading a worker takes a second or so: the sessions open only once all are ready, so the
  // fleet's connect time is not the spread of the workers' start-up.
  for (const worker of workers) send(worker, { type: 'begin' })

  const refresh = async (timeoutMs = 10_000): Promise<FleetStats> => {
    const id = ++seq
    const targets = live()
    if (targets.length > 0) {
      const done = new Promise<void>((resolve) => {
        pending.set(id, { waiting: new Set(targets.map((worker) => worker.index)), resolve })
      })
      for (const worker of targets) send(worker, { type: 'report', seq: id })
      await withTimeout(done, timeoutMs, 'fleet workers did not report in time').finally(() => pending.delete(id))
    }
    return aggregate()
  }

  let stopped: Promise<FleetStats> | undefined
  const stop = async (stopOptions: { drainMs?: number; closeMs?: number } = {}): Promise<FleetStats> => {
    const drainMs = stopOptions.drainMs ?? 2000
    const closeMs = stopOptions.closeMs ?? 2000
    stopping = true
    for (const worker of live()) send(worker, { type: 'stop', drainMs, closeMs })
    // Each engine needs drainMs + closeMs + about 1 s; then it is killed.
    const deadline = drainMs + closeMs + 5000
    await withTimeout(Promise.all(workers.map((worker) => worker.exited)), deadline, '').catch(() => {})
    await killAll()
    return aggregate()
  }

  return {
    pids: workers.map((worker) => worker.child.pid ?? 0),
    stats: aggregate,
    refresh,
    async setPublishing(on, intervalMs) {
      for (const worker of live())
        send(worker, { type: 'publishing', on, ...(intervalMs === undefined ? {} : { intervalMs }) })
      // IPC is ordered: once each worker answered a later report request, it has applied this.
      // Patient: on a machine shared with other work a starved worker answers late.
      await refresh(60_000)
    },
    openLatencyWindow() {
      const histogram = createLatencyHistogram()
      windows.add(histogram)
      return {
        summary: () => summarizeLatency(histogram),
        close: () => {
          windows.delete(histogram)
        },
      }
    },
    waitFor(predicate, timeoutMs) {
      if (predicate(aggregate())) return Promise.resolve(true)
      return new Promise<boolean>((resolve) => {
        const check = () => {
          if (!predicate(aggregate())) return
          finish(true)
        }
        const timer = setTimeout(() => finish(false), timeoutMs)
        const finish = (result: boolean) => {
          clearTimeout(timer)
          listeners.delete(check)
          resolve(result)
        }
        listeners.add(check)
      })
    },
    stop(stopOptions) {
      stopped ??= stop(stopOptions)
      return stopped
    },
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
