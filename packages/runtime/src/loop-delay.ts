import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks'

// Event-loop delay of the process that does a benchmark's work (issue 13: "report event-loop
// delay p99 under load with every benchmark"). Node's monitorEventLoopDelay samples, from libuv,
// the time between consecutive runs of a timer of `resolutionMs`: a loop held for 300 ms shows
// one sample of about 300 ms. Each sample includes the resolution itself, so an idle loop reads
// about `resolutionMs` (1 ms by default, as services/processor/bench/checkpoint-loop-delay.ts).

export interface LoopDelaySummary {
  /** Samples taken: about one per `resolutionMs` of free loop, one per stall. */
  samples: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  meanMs: number
  resolutionMs: number
}

export interface LoopDelayMonitor {
  /** Over the samples since start or the last reset. */
  summary(): LoopDelaySummary
  reset(): void
  stop(): void
}

const ms = (ns: number) => Math.round(ns / 1e4) / 100

export function summarizeLoopDelay(histogram: IntervalHistogram, resolutionMs: number): LoopDelaySummary {
  // An empty histogram answers 9.2e18 for min and NaN for the mean: report zeros instead.
  if (histogram.count === 0) return { samples: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0, resolutionMs }
  return {
    samples: histogram.count,
    p50Ms: ms(histogram.percentile(50)),
    p90Ms: ms(histogram.percentile(90)),
    p99Ms: ms(histogram.percentile(99)),
    maxMs: ms(histogram.max),
    meanMs: ms(histogram.mean),
    resolutionMs,
  }
}

/** Starts sampling this process's event-loop delay now. */
export function startLoopDelayMonitor(resolutionMs = 1): LoopDelayMonitor {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs })
  histogram.enable()
  return {
    summary: () => summarizeLoopDelay(histogram, resolutionMs),
    reset: () => histogram.reset(),
    stop: () => {
      histogram.disable()
    },
  }
}

/** One answer of a process to a loop-delay mark (answerLoopDelayMarks). */
export interface LoopDelayMark {
  pid: number
  /** 1 for the first mark. */
  mark: number
  atMs: number
  /** Since the previous mark. */
  window: LoopDelaySummary
  /** Since the first mark: exact percentiles over a whole phase, which per-window figures cannot give. */
  run: LoopDelaySummary
}

/** The file a process answers marks in, one per process of a benchmark. */
export function loopDelayMarkFile(directory: string, pid: number): string {
  return `${directory}/loop-delay-${pid}.ndjson`
}

/**
 * For a benchmark's child process (loaded with `node --import`, see
 * packages/runtime/bench/loop-delay-preload.ts): the parent marks the phases of its run with
 * SIGUSR2 (SIGUSR1 belongs to the inspector) and the process appends one LoopDelayMark line per
 * mark to `file`. The first mark starts the run. Two monitors run at `resolutionMs`.
 */
export function answerLoopDelayMarks(file: string, resolutionMs = 1): void {
  const window = startLoopDelayMonitor(resolutionMs)
  const run = startLoopDelayMonitor(resolutionMs)
  let mark = 0
  process.on('SIGUSR2', () => {
    mark++
    const line: LoopDelayMark = {
      pid: process.pid,
      mark,
      atMs: Date.now(),
      window: window.summary(),
      run: run.summary(),
    }
    appendFileSync(file, `${JSON.stringify(line)}\n`)
    window.reset()
    if (mark === 1) run.reset()
  })
}

/**
 * The parent's side: signals `pid` for its mark number `mark` (counted from 1) and resolves with
 * the line it appends to `file`; rejects after `timeoutMs`. The file is polled: the child answers
 * whenever its loop gets to the signal, which under load is part of what is measured.
 */
export async function requestLoopDelayMark(
  pid: number,
  file: string,
  mark: number,
  timeoutMs = 30_000,
): Promise<LoopDelayMark> {
  process.kill(pid, 'SIGUSR2')
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
    if (lines.length >= mark) return JSON.parse(lines[mark - 1]!) as LoopDelayMark
    if (Date.now() > deadline) throw new Error(`process ${pid} did not answer loop-delay mark ${mark}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
