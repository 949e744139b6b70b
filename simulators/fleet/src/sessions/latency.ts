import * as hdr from 'hdr-histogram-js'

// Latencies are recorded in microseconds in an HdrHistogram: fixed relative precision (3
// significant digits) from 1 µs to an hour, constant memory however many values, and
// histograms from several processes add up exactly (percentiles of averages would not).

export type LatencyHistogram = hdr.Histogram

const HIGHEST_US = 3_600_000_000

export function createLatencyHistogram(): LatencyHistogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    // 32-bit counters: at 40,000 values a second a bucket would need 30 hours to overflow.
    bitBucketSize: 32,
    useWebAssembly: false,
  })
}

/** Records one latency given in milliseconds (fractions kept down to 1 µs). */
export function recordMs(histogram: LatencyHistogram, ms: number): void {
  const us = Math.round(ms * 1000)
  histogram.recordValue(Math.min(HIGHEST_US, Math.max(1, us)))
}

/** For IPC: the compact, lossless encoding HdrHistogram defines. */
export function encodeLatency(histogram: LatencyHistogram): string {
  return hdr.encodeIntoCompressedBase64(histogram)
}

export function addEncodedLatency(into: LatencyHistogram, encoded: string): void {
  if (encoded === '') return
  const decoded = hdr.decodeFromCompressedBase64(encoded, 32, false)
  into.add(decoded)
  decoded.destroy()
}

export interface LatencySummary {
  count: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  p999Ms: number
  maxMs: number
  meanMs: number
}

export function summarizeLatency(histogram: LatencyHistogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000
  const count = histogram.totalCount
  if (count === 0) return { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, meanMs: 0 }
  return {
    count,
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p90Ms: ms(histogram.getValueAtPercentile(90)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
    meanMs: ms(histogram.mean),
  }
}
