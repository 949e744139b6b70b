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
// One report at a time: the next goes only once the coordinator says it received the previous,
// so a coordinator slower than the workers (a saturated machine) never has reports piling up
// in an IPC channel on either side. Reports due meanwhile are coalesced into the next one
// (counters are totals; the latency histograms keep accumulating in the engine, fixed size).
let reportInFlight = false
let reportDue = false

const send = (message: FromRunWorker) => {
  if (process.connected) process.send?.(message)
}

/** Sends a report now if none is unanswered, else as soon as the coordinator answers. */
const report = () => {
  if (!job) return
  if (reportInFlight) {
    reportDue = true
    return
  }
  reportInFlight = true
  reportDue = false
  send({ type: 'report', ...job.report() })
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
        running.onBlocked = report
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
      reportTimer = setInterval(report, REPORT_INTERVAL_MS)
      return
    case 'reportReceived':
      reportInFlight = false
      if (reportDue) report()
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
