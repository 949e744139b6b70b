// Learned thresholds (CONTRACT.md §1 `idle` absent, §7) from a synthetic three-level history.

import { describe, expect, it } from 'vitest'
import { harness, MIXER, power, T0 } from './helpers.ts'

/** A deterministic ±5 % wobble (no Math.random). */
const wobble = (i: number) => 1 + 0.05 * Math.sin(i * 1.7)

describe('learned thresholds', () => {
  it('are unknown before enough history, then learned from off / idle / running levels', () => {
    const h = harness()
    let i = 0
    const level = (t: number) => {
      const phase = Math.floor((t - T0) / 1200) % 3 // 20 min off, 20 min idle, 20 min running
      return [300, 12_000, 65_000][phase]!
    }
    for (let t = T0; t < T0 + 1800; t += 10) h.feed('mixer-p', power(t, level(t) * wobble(i++)))
    h.clock(T0 + 1900)
    expect(h.detection.thresholds(MIXER)).toEqual({
      origin: 'none',
      offBelowW: null,
      runAboveW: null,
      afterS: null,
      rule: 'band',
    })
    expect(h.detection.equipmentState(MIXER)).toBe('unknown')
    for (let t = T0 + 1800; t < T0 + 4 * 3600; t += 10) h.feed('mixer-p', power(t, level(t) * wobble(i++)))
    h.clock(T0 + 4 * 3600 + 100)
    const th = h.detection.thresholds(MIXER)!
    expect(th.origin).toBe('learned')
    expect(th.afterS).toBe(300)
    expect(th.levelsW!.length).toBe(3)
    // Thresholds in the gaps between the levels (with their ±5 %).
    expect(th.offBelowW!).toBeGreaterThan(320)
    expect(th.offBelowW!).toBeLessThan(11_400)
    expect(th.runAboveW!).toBeGreaterThan(12_600)
    expect(th.runAboveW!).toBeLessThan(61_700)
    // Learned at 1 h: every later 20-minute idle phase is an episode (band rule).
    const idle = h.take().filter((a) => a.kind === 'idle')
    const raised = idle.filter((a) => a.state === 'raised')
    expect(raised.length).toBeGreaterThanOrEqual(3)
    for (const a of raised) expect((a.since / 1000 - T0) % 3600).toBe(1200)
    expect(h.detection.equipmentState(MIXER)).not.toBe('unknown')
  })

  it('keep memory bounded: a long history leaves the checkpoint size flat', () => {
    const h = harness()
    let i = 0
    for (let t = T0; t < T0 + 2 * 3600; t += 5) h.feed('mixer-p', power(t, (i % 2 ? 300 : 50_000) * wobble(i++)))
    const size1 = JSON.stringify(h.detection.checkpoint()).length
    for (let t = T0 + 2 * 3600; t < T0 + 8 * 3600; t += 5)
      h.feed('mixer-p', power(t, (i % 2 ? 300 : 50_000) * wobble(i++)))
    const size2 = JSON.stringify(h.detection.checkpoint()).length
    expect(size2).toBeLessThan(size1 * 1.2)
  })
})
