// Idle episodes by CONTRACT.md §7: both rules, raise time exactly at the first reading with time ≥
// start + afterS, clear at the reading that ends the episode, hysteresis without flapping.

import { describe, expect, it } from 'vitest'
import { harness, OVEN, output, PRESS, power, T0 } from './helpers.ts'

describe('idle with an output counter (press)', () => {
  it('raises at the first reading still without increase at or after start + afterS, clears at the next increase', () => {
    const h = harness()
    let count = 0
    // Producing: 20 kW, output rising every 10 s for 10 minutes.
    for (let t = T0; t < T0 + 600; t += 10) {
      h.feed('press-p', power(t, 20_000))
      h.feed('press-o', output(t, ++count))
    }
    // Last increase at T0 + 590; then powered without output, readings every 7 s.
    const start = T0 + 590
    let t = T0 + 597
    for (; t < start + 400; t += 7) {
      h.feed('press-p', power(t, 15_000))
      h.feed('press-o', output(t, count))
    }
    h.feed('press-p', power(t, 20_000))
    h.feed('press-o', output(t, count + 1))
    const end = t
    // The clear waits until the watermark (clock − 60 s) is latenessS past the end of its minute.
    h.clock((Math.floor(end / 60) + 1) * 60 + 121)
    const [raised, cleared, ...rest] = h.take().filter((a) => a.kind === 'idle')
    expect(rest).toEqual([])
    // The first reading at or after start + 300: 597 + 7k ≥ 890 → k = 42 → T0 + 891.
    expect(raised).toMatchObject({ state: 'raised', scope: PRESS, since: start * 1000, at: (T0 + 891) * 1000 })
    expect(raised!.data).toEqual({ powerW: 15_000 })
    expect(raised!.severity).toBe('warning')
    expect(cleared).toMatchObject({ id: raised!.id, state: 'cleared', since: start * 1000, at: end * 1000 })
    const durationS = end - start
    expect(cleared!.data).toMatchObject({ durationS, wastedWh: (durationS / 3600) * 10_000 })
    expect(cleared!.data.wastedCo2G).toBeCloseTo((durationS / 3600) * 5000)
    expect(h.spans).toEqual([
      [PRESS, start, undefined],
      [PRESS, start, end],
    ])
  })

  it('starts at power-on and ends at the first unpowered reading; a short stop is no episode', () => {
    const h = harness()
    h.feed('press-p', power(T0, 500))
    h.feed('press-o', output(T0, 7))
    // Powered on at T0 + 60 without producing.
    for (let t = T0 + 60; t <= T0 + 400; t += 20) {
      h.feed('press-p', power(t, 12_000))
      h.feed('press-o', output(t, 7))
    }
    h.feed('press-p', power(T0 + 420, 300))
    // A stop shorter than afterS: powered 100 s.
    for (let t = T0 + 500; t <= T0 + 600; t += 20) h.feed('press-p', power(t, 12_000))
    h.feed('press-p', power(T0 + 620, 300))
    h.clock(T0 + 1000)
    const idle = h.take().filter((a) => a.kind === 'idle')
    expect(idle.map((a) => [a.state, a.since / 1000 - T0, a.at / 1000 - T0])).toEqual([
      ['raised', 60, 360],
      ['cleared', 60, 420],
    ])
    expect(h.detection.equipmentState(PRESS)).toBe('off')
  })

  it('reports state, live idle count and power while idle', () => {
    const h = harness()
    for (let t = T0; t <= T0 + 340; t += 10) {
      h.feed('press-p', power(t, 12_000))
      h.feed('press-o', output(t, 1))
    }
    // Readings are released up to the site clock − latenessS (60 s): T0 + 280 so far.
    expect(h.detection.equipmentState(PRESS)).toBe('running')
    expect(h.detection.idleNow('s')).toEqual({ count: 0, powerW: 0 })
    h.clock(T0 + 461)
    expect(h.detection.equipmentState(PRESS)).toBe('idle')
    expect(h.detection.idleNow('s')).toEqual({ count: 1, powerW: 12_000 })
    expect(h.detection.idleNow('s/a/l')).toEqual({ count: 1, powerW: 12_000 })
    expect(h.detection.idleNow(OVEN)).toEqual({ count: 0, powerW: 0 })
    expect(h.detection.thresholds(PRESS)).toEqual({
      origin: 'given',
      offBelowW: 1000,
      runAboveW: 40_000,
      afterS: 300,
      rule: 'output',
    })
  })
})

describe('idle without an output counter (oven)', () => {
  it('idle while offBelowW ≤ power < runAboveW: starts at the first such reading, raises at ≥ start + afterS', () => {
    const h = harness()
    h.feed('oven-p', power(T0, 80_000))
    h.feed('oven-p', power(T0 + 13, 30_000)) // start
    for (let t = T0 + 26; t <= T0 + 325; t += 13) h.feed('oven-p', power(t, 30_000))
    h.feed('oven-p', power(T0 + 338, 90_000)) // ends it
    h.clock(T0 + 500)
    const idle = h.take().filter((a) => a.kind === 'idle')
    // 13 + 300 = 313 → the first reading at or after it is T0 + 325.
    expect(idle.map((a) => [a.state, a.since / 1000 - T0, a.at / 1000 - T0])).toEqual([
      ['raised', 13, 325],
      ['cleared', 13, 338],
    ])
    expect(idle[0]!.data).toEqual({ powerW: 30_000 })
    expect(idle[1]!.data.durationS).toBe(325)
  })

  it('raises exactly at start + afterS when a reading falls there', () => {
    const h = harness()
    for (let t = T0; t <= T0 + 300; t += 10) h.feed('oven-p', power(t, 30_000))
    h.clock(T0 + 400)
    const [raised] = h.take()
    expect(raised).toMatchObject({ state: 'raised', since: T0 * 1000, at: (T0 + 300) * 1000 })
  })

  it('does not flap on noise around runAboveW (hysteresis widens the exit only)', () => {
    const h = harness()
    // Idle just below runAboveW = 60 kW with noise reaching 2 % above it.
    const noise = [0.97, 1.02, 0.99, 1.01, 0.96, 1.02, 0.98]
    let t = T0
    // Entering the band: the first reading below 60 kW (exact threshold) starts the episode.
    h.feed('oven-p', power(t, 80_000))
    t += 10
    for (let i = 0; t < T0 + 3600; t += 10, i++) h.feed('oven-p', power(t, 60_000 * noise[i % noise.length]!))
    h.feed('oven-p', power(t, 70_000))
    h.clock(t + 200)
    const idle = h.take().filter((a) => a.kind === 'idle')
    expect(idle.map((a) => a.state)).toEqual(['raised', 'cleared'])
    expect(idle[0]!.since).toBe((T0 + 10) * 1000)
    expect(idle[0]!.at).toBe((T0 + 310) * 1000)
    expect(idle[1]!.at).toBe(t * 1000)
  })

  it('noise reaching into the band does not start an episode from running', () => {
    const h = harness()
    // Running just above runAboveW: a dip below it starts a candidate, the next reading ends it;
    // no candidate lasts afterS, so nothing is raised.
    for (let t = T0, i = 0; t < T0 + 3600; t += 10, i++) h.feed('oven-p', power(t, i % 5 === 0 ? 59_000 : 63_000))
    h.clock(T0 + 4000)
    expect(h.take()).toEqual([])
  })
})
