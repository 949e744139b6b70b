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
