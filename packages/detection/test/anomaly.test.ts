// Over-consumption against the equipment's own running baseline.

import { describe, expect, it } from 'vitest'
import { harness, OVEN, power, T0 } from './helpers.ts'

const wobble = (i: number) => 1 + 0.02 * Math.sin(i * 1.3)

describe('anomaly', () => {
  it('raises after a sustained excess over the running baseline, with severity, and clears when back', () => {
    const h = harness()
    let i = 0
    let t = T0
    for (; t < T0 + 2 * 3600; t += 10) h.feed('oven-p', power(t, 80_000 * wobble(i++)))
    expect(h.detection.checkpoint().sites[0]!.equipment[1]!.anomaly.baseline).not.toBeNull()
    // A short surge (5 min) is normal.
    const surgeEnd = t + 300
    for (; t < surgeEnd; t += 10) h.feed('oven-p', power(t, 110_000))
    for (; t < surgeEnd + 600; t += 10) h.feed('oven-p', power(t, 80_000 * wobble(i++)))
    h.clock(t + 61)
    expect(h.take().filter((a) => a.kind === 'anomaly')).toEqual([])
    // 30 min at 130 kW (+62 %): critical.
    const since = t
    for (; t < since + 1800; t += 10) h.feed('oven-p', power(t, 130_000 * wobble(i++)))
    const back = t
    for (; t < back + 600; t += 10) h.feed('oven-p', power(t, 80_000 * wobble(i++)))
    h.clock(t + 61)
    const anomaly = h.take().filter((a) => a.kind === 'anomaly')
    expect(anomaly.map((a) => [a.state, a.since / 1000 - since, a.at / 1000 - since])).toEqual([
      ['raised', 0, 600],
      ['cleared', 0, 1800],
    ])
    expect(anomaly[0]!.severity).toBe('critical')
    expect(anomaly[0]!.scope).toBe(OVEN)
    expect(anomaly[0]!.data.baselineW as number).toBeGreaterThan(78_000)
    expect(anomaly[0]!.data.baselineW as number).toBeLessThan(82_000)
    expect(anomaly[1]!.data.durationS).toBe(1800)
  })
})
