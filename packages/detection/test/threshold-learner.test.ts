// A learner restored from its checkpoint at any step learns what the running one learns: the
// processor restarts from checkpoints, and the replay-determinism rule holds across them.

import { createRng } from '@plantwatt/fleet'
import { describe, expect, it } from 'vitest'
import { DEFAULT_OPTIONS } from '../src/options.ts'
import { ThresholdLearner } from '../src/thresholds.ts'

const RATED_W = 250_000

/** An oven's day: levels that come and go (off, standby, a heater fault, running at two speeds). */
function powerAt(rng: () => number, minute: number): number {
  const phase = Math.floor(minute / 90) % 7
  const levelW = [400, 20_000, 5_000, 150_000, 190_000, 20_000, 150_000][phase]!
  return levelW * (1 + (rng() - 0.5) * 0.1)
}

describe('threshold learner', () => {
  it('restored at any step, learns the same thresholds as the learner that ran on', () => {
    const rng = createRng(7)
    const options = { ...DEFAULT_OPTIONS, learnEveryS: 60 }
    const learner = new ThresholdLearner(RATED_W, options)
    const distinct = new Set<string>()
    let compared = 0
    for (let minute = 0; minute < 3 * 24 * 60; minute++) {
      const tS = 1_700_000_000 + minute * 60
      const powerW = powerAt(rng, minute)
      const fresh = new ThresholdLearner(RATED_W, options)
      fresh.restore(structuredClone(learner.toJSON()))
      const changed = learner.add(tS, powerW)
      expect(fresh.add(tS, powerW)).toBe(changed)
      expect(fresh.learned).toEqual(learner.learned)
      if (changed) distinct.add(JSON.stringify(learner.learned))
      compared++
    }
    // The history moved the thresholds, and not only once.
    expect(distinct.size).toBeGreaterThan(3)
    expect(compared).toBe(3 * 24 * 60)
  })
})
