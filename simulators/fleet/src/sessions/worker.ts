// Entry of one load-generator worker process (forked by runFleetProcesses): runs a
// SessionEngine over its slice of the fleet and reports to the parent over IPC.

import { isAbsolute } from 'node:path'
import { pathToFileURL } from 'node:url'
import { SessionEngine } from './engine.ts'
import { encodeLatency } from './latency.ts'
import type { PayloadFactory } from './payload.ts'
import type { FromWorker, ToWorker, WorkerReport } from './worker-protocol.ts'

if (!process.send) {
  console.error('sessions/worker.ts runs as a child process of runFleetProcesses, with an IPC channel')
  process.exit(2)
}

let engine: SessionEngine | undefined
let reportTimer: NodeJS.Timeout | undefined
let stopping = false

const send = (message: FromWorker) => {
  if (process.connected) process.send?.(message)
}

const report = (): WorkerReport => {
  const active = engine!
  // Interval histograms: each value goes to the parent exactly once, where they add up.
  const latency = active.latency.totalCount > 0 ? encodeLatency(active.latency) : ''
  const connectLatency = active.connectLatency.totalCount > 0 ? encodeLatency(active.connectLatency) : ''
  active.latency.reset()
  active.connectLatency.reset()
  const cpu = process.cpuUsage()
  return {
    stats: active.stats(),
    latency,
    connectLatency,
    process: { pid: process.pid, rssBytes: process.memoryUsage.rss(), cpuUserUs: cpu.user, cpuSystemUs: cpu.system },
  }
}

const stop = async (drainMs: number, closeMs: number) => {
  if (stopping) return
  stopping = true
  clearInterval(reportTimer)
  if (engine) {
    await engine.stop({ drainMs, closeMs })
    send({ type: 'stopped', ...report() })
  }
  // Let the IPC message flush before leaving.
  setTimeout(() => process.exit(0), 50)
}

const start = async (message: Extract<ToWorker, { type: 'start' }>) => {
  const { payloadModule, ...options } = message.options
  let payload: PayloadFactory | undefined
  if (payloadModule) {
    const url = isAbsolute(payloadModule) ? pathToFileURL(payloadModule).href : payloadModule
    payload = ((await import(url)) as { payload: PayloadFactory }).payload
  }
  engine = new SessionEngine({ ...options, payload })
  reportTimer = setInterval(() => send({ type: 'report', seq: null, ...report() }), message.reportIntervalMs)
  // Bounded in time even if the parent never says stop.
  setTimeout(() => void stop(2000, 2000), message.maxLifetimeMs).unref()
  send({ type: 'started' })
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'start':
      start(message).catch((error: unknown) => {
        send({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
        process.exit(1)
      })
      return
    case 'begin':
      engine?.start()
      return
    case 'publishing':
      engine?.setPublishing(message.on, message.intervalMs)
      return
    case 'report':
      if (engine) send({ type: 'report', seq: message.seq, ...report() })
      return
    case 'stop':
      void stop(message.drainMs, message.closeMs)
      return
  }
})

// The parent went away: close the sessions quickly rather than linger.
process.on('disconnect', () => void stop(0, 500))
