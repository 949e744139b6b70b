// Optimal 1-D k-means of weighted points: the clustering that ckmeans (simple-statistics) finds
// for a sample in which each value repeats `weight` times, at the cost of the distinct values.
// Threshold learning clusters a 256-point quantile sample of a log histogram; those points fall in
// a few dozen bins, so clustering the bins with their counts does the same work in a small part of
// the time (ckmeans on the 256 points was most of the processor's learning cost at 40,000
// devices: docs/benchmarks.md).

/**
 * Splits `values` (ascending, distinct) into `k` contiguous clusters minimising the sum over
 * clusters of Σ weight × (value − cluster mean)². Returns each cluster as the index range
 * [from, to) into `values`, lowest first; `k` is clamped to 1..values.length. Dynamic programming
 * on prefix sums: O(k·m²) for m values, which is what makes it cheap for a few dozen.
 */
export function weightedKMeans1d(values: readonly number[], weights: readonly number[], k: number): [number, number][] {
  const m = values.length
  if (m === 0) return []
  const clusters = Math.max(1, Math.min(k, m))
  // Sums of values shifted by a middle one: the squares stay small, as in ckmeans.
  const shift = values[Math.floor(m / 2)]!
  const w = new Float64Array(m + 1)
  const wx = new Float64Array(m + 1)
  const wxx = new Float64Array(m + 1)
  for (let i = 0; i < m; i++) {
    const x = values[i]! - shift
    const weight = weights[i]!
    w[i + 1] = w[i]! + weight
    wx[i + 1] = wx[i]! + weight * x
    wxx[i + 1] = wxx[i]! + weight * x * x
  }
  /** Weighted squared deviation of values[from..to] (inclusive) around their mean. */
  const deviation = (from: number, to: number) => {
    const weight = w[to + 1]! - w[from]!
    const sum = wx[to + 1]! - wx[from]!
    // Rounding can leave a single value's deviation a hair below 0.
    return Math.max(0, wxx[to + 1]! - wxx[from]! - (sum * sum) / weight)
  }
  // cost[c·m + i]: the best c+1 clusters of values[0..i]; start[c·m + i]: where the last begins.
  const cost = new Float64Array(clusters * m)
  const start = new Int32Array(clusters * m)
  for (let i = 0; i < m; i++) cost[i] = deviation(0, i)
  for (let c = 1; c < clusters; c++) {
    for (let i = c; i < m; i++) {
      let best = Number.POSITIVE_INFINITY
      let bestStart = i
      for (let j = c; j <= i; j++) {
        const candidate = cost[(c - 1) * m + j - 1]! + deviation(j, i)
        // Among equal costs the later start, as ckmeans mostly takes (ties are symmetric samples).
        if (candidate <= best) {
          best = candidate
          bestStart = j
        }
      }
      cost[c * m + i] = best
      start[c * m + i] = bestStart
    }
  }
  const ranges: [number, number][] = []
  let to = m
  for (let c = clusters - 1; c >= 0; c--) {
    const from = c === 0 ? 0 : start[c * m + to - 1]!
    ranges.push([from, to])
    to = from
  }
  return ranges.reverse()
}
