// Entry of one fleet worker process (forked by runFleetWorkers): runs one simulate or replay
// job over its share of the devices and reports to the coordinator over IPC.

import type { TruthJson } from '../model/index.ts'
import type { FromRunWorker, ToRunWorker } from './protocol.ts'
import { ReplayRun } from './replay-job.ts'
import { SimulateRun } from './simulate-job.ts'

if (!process.send) {
  console.error('run/worker.ts runs as a child process of runFleetWorkers, with an IPC channel')
  process.exit(2)
}

const REPORT_INTERVAL_MS = 250

let job: SimulateRun | ReplayRun | undefined
let reportTimer: NodeJS.Timeout | undefined

const send = (message: FromRunWorker) => {
  if (process.connected) process.send?.(message)
}

const fail = (error: unknown) => {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
  // Let the IPC message flush before leaving.
  setTimeout(() => process.exit(1), 50)
}

const begin = (startS: number, wallStartMs: number, horizonS: number) => {
  const running = job!
  running.setHorizon(horizonS)
  const done: Promise<TruthJson | null> =
    running instanceof SimulateRun ? running.run(startS, wallStartMs) : running.run(wallStartMs)
  done.then((truth) => {
    clearInterval(reportTimer)
    send({ type: 'finished', truth, ...running.report() })
    setTimeout(() => process.exit(0), 50)
  }, fail)
}

process.on('message', (message: ToRunWorker) => {
  switch (message.type) {
    case 'start': {
      const spec = message.job
      const opened = spec.kind === 'simulate' ? Promise.resolve(new SimulateRun(spec)) : ReplayRun.open(spec)
      opened.then((running) => {
        job = running
        running.onBlocked = () => send({ type: 'report', ...running.report() })
        send({
          type: 'ready',
          devices: running.deviceCount,
          startS: running instanceof ReplayRun ? running.startS : null,
        })
      }, fail)
      return
    }
    case 'connect':
      job?.connect()
      reportTimer = setInterval(() => send({ type: 'report', ...job!.report() }), REPORT_INTERVAL_MS)
      return
    case 'begin':
      begin(message.startS, message.wallStartMs, message.horizonS)
      return
    case 'horizon':
      job?.setHorizon(message.horizonS)
      return
    case 'finish':
      job?.finish()
      return
  }
})

// The coordinator went away: stop producing; the job drains briefly and the process exits.
process.on('disconnect', () => {
  job?.finish()
  setTimeout(() => process.exit(0), 5000).unref()
})
