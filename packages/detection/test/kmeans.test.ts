// weightedKMeans1d against simple-statistics' ckmeans on the expanded sample, on the samples
// threshold learning makes: quantile bins of log histograms of equipment with 1 to 4 power levels.

import { createRng } from '@plantwatt/fleet'
import { ckmeans } from 'simple-statistics'
import { describe, expect, it } from 'vitest'
import { LogHistogram } from '../src/histogram.ts'
import { weightedKMeans1d } from '../src/kmeans.ts'

const SAMPLE = 256

/** A sample as learning takes it: 256 quantile bins of an equipment's power history, as runs. */
function learningSample(rng: () => number): { values: number[]; weights: number[]; expanded: number[] } {
  const ratedW = 1_000 + rng() * 500_000
  const histogram = new LogHistogram(ratedW * 1e-4, 5, 50, 1_000_000)
  const levels = Array.from({ length: 1 + Math.floor(rng() * 4) }, () => ({
    powerW: ratedW * 10 ** (-3.5 * rng()),
    share: rng(),
    noise: 0.002 + rng() * 0.3,
  }))
  const total = levels.reduce((sum, level) => sum + level.share, 0)
  const readings = 20 + Math.floor(rng() * 3000)
  for (let n = 0; n < readings; n++) {
    const pick = rng() * total
    let level = levels[levels.length - 1]!
    for (let i = 0, upTo = 0; i < levels.length; i++) {
      upTo += levels[i]!.share
      if (pick < upTo) {
        level = levels[i]!
        break
      }
    }
    histogram.add(level.powerW * (1 + (rng() - 0.5) * 2 * level.noise))
  }
  const values: number[] = []
  const weights: number[] = []
  const expanded: number[] = []
  for (const bin of histogram.quantileBins(SAMPLE)) {
    const value = histogram.logCenter(bin)
    expanded.push(value)
    if (values[values.length - 1] === value) weights[weights.length - 1]!++
    else {
      values.push(value)
      weights.push(1)
    }
  }
  return { values, weights, expanded }
}

/** Σ (x − mean)² over each cluster of a sorted sample, clusters given by their sizes. */
function withinCost(sorted: number[], sizes: number[]): number {
  let cost = 0
  let from = 0
  for (const size of sizes) {
    const cluster = sorted.slice(from, from + size)
    const mean = cluster.reduce((a, b) => a + b, 0) / size
    for (const x of cluster) cost += (x - mean) ** 2
    from += size
  }
  return cost
}

describe('weighted 1-D k-means', () => {
  it('finds the clusters ckmeans finds in the expanded sample', () => {
    const rng = createRng(11)
    let identical = 0
    const cases = 3000
    for (let n = 0; n < cases; n++) {
      const { values, weights, expanded } = learningSample(rng)
      const k = Math.min(4, values.length)
      const theirs = ckmeans(expanded, k)
        .filter((cluster) => cluster.length > 0)
        .map((cluster) => cluster.length)
      const ours = weightedKMeans1d(values, weights, k).map(([from, to]) =>
        weights.slice(from, to).reduce((a, b) => a + b, 0),
      )
      expect(ours.reduce((a, b) => a + b, 0)).toBe(SAMPLE)
      // Both optimal: the same cost. The clusters too, but where two splits cost the same to the
      // last bits (a symmetric sample), rounding decides, and each may take the other.
      const theirCost = withinCost(expanded, theirs)
      expect(Math.abs(withinCost(expanded, ours) - theirCost)).toBeLessThanOrEqual(1e-12 * (1 + theirCost))
      if (ours.join() === theirs.join()) identical++
    }
    // 2,998 of these 3,000: the other two are exact ties.
    expect(identical).toBeGreaterThanOrEqual(cases * 0.998)
  })

  it('gives every value its own cluster when k is the number of values, one cluster for k = 1', () => {
    expect(weightedKMeans1d([1, 2, 3], [5, 1, 2], 3)).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ])
    expect(weightedKMeans1d([1, 2, 3], [5, 1, 2], 1)).toEqual([[0, 3]])
    expect(weightedKMeans1d([], [], 4)).toEqual([])
  })

  it('weighs the values: a heavy value pulls its neighbour into its cluster', () => {
    // Unweighted, 1 and 2 would pair against 10; with 2 beside a heavy 10 it still pairs with 1,
    // while a heavy 2 leaves 1 alone only when the split pays.
    expect(weightedKMeans1d([1, 2, 10], [1, 1, 1], 2)).toEqual([
      [0, 2],
      [2, 3],
    ])
    expect(weightedKMeans1d([0, 5, 6], [100, 1, 100], 2)).toEqual([
      [0, 1],
      [1, 3],
    ])
  })
})
