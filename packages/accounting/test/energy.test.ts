// CONTRACT.md §2 (dedup, too_old, out_of_range) and §7 energy rules, one at a time.

import { describe, expect, it } from 'vitest'
import { powerInRange } from '../src/index.ts'
import { E1, E2, energy, engineOf, L1, plantOf, power } from './helpers.ts'

const T = 1_740_000_000 - (1_740_000_000 % 3600) // a whole hour

describe('counters (§7)', () => {
  it('spreads a counter step evenly over minute boundaries', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d1', energy(T + 30, 1000))
    send('d1', energy(T + 150, 1120)) // 120 Wh over 120 s: 30 s, 60 s, 30 s
    expect(minuteWh(E1)).toEqual([30, 60, 30])
  })

  it('counts the new value after a reset', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d1', energy(T, 5000))
    send('d1', energy(T + 60, 5060))
    send('d1', energy(T + 120, 40)) // reset: 40 Wh
    expect(minuteWh(E1)).toEqual([60, 40, 0])
  })

  it('re-splits an interval exactly when a late reading lands inside it', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 120, 120))
    expect(minuteWh(E1)).toEqual([60, 60, 0])
    send('d1', energy(T + 60, 100)) // the first minute drew 100, the second 20
    expect(minuteWh(E1)).toEqual([100, 20, 0])
  })

  it('sums devices into equipment and equipment into lines and the site', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d1', energy(T, 0))
    send('d1', energy(T + 60, 10))
    send('d1b', energy(T, 0))
    send('d1b', energy(T + 60, 5))
    send('d2', energy(T, 0))
    send('d2', energy(T + 60, 7))
    expect(minuteWh(E1)[0]).toBe(15)
    expect(minuteWh(L1)[0]).toBe(22)
    expect(minuteWh('s/a/l2')[0]).toBe(0)
    expect(minuteWh('s')[0]).toBe(22)
  })
})

describe('power (§7)', () => {
  it('uses the trapezoid between power readings where no counter covers', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d2', power(T, 3600))
    send('d2', power(T + 60, 7200)) // (3600 + 7200) / 2 W for 60 s = 90 Wh
    expect(minuteWh(E2)).toEqual([90, 0])
  })

  it('does not bridge gaps longer than 900 s', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d2', power(T, 3600))
    send('d2', power(T + 901, 3600))
    expect(minuteWh(E2).reduce((a, b) => a + b, 0)).toBe(0)
    send('d2', power(T + 1801, 3600)) // 900 s: bridged
    expect(minuteWh(E2).reduce((a, b) => a + b, 0)).toBe(900)
  })

  it('counts power only outside the counter coverage, and gives way when the counter catches up', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d1', power(T, 3600))
    send('d1', energy(T, 0))
    send('d1', power(T + 60, 3600))
    send('d1', power(T + 120, 3600))
    expect(minuteWh(E1)).toEqual([60, 60, 0]) // power only: the counter has one reading
    send('d1', energy(T + 60, 50)) // the counter covers minute 0 now
    expect(minuteWh(E1)).toEqual([50, 60, 0])
    send('d1', energy(T + 120, 80))
    expect(minuteWh(E1)).toEqual([50, 30, 0])
  })

  it('re-splits a power trapezoid when a late power reading lands inside it', () => {
    const { send, minuteWh } = engineOf(plantOf())
    send('d2', power(T, 0))
    send('d2', power(T + 120, 0))
    send('d2', power(T + 60, 6000)) // two triangles of 50 Wh each
    expect(minuteWh(E2)).toEqual([50, 50, 0])
  })
})

describe('ordering, dedup and rejections (§2)', () => {
  it('counts a repeat of (device, measurement, time) once', () => {
    const { engine, send, minuteWh } = engineOf(plantOf())
    expect(send('d1', energy(T, 0))).toBe('accepted')
    expect(send('d1', energy(T + 60, 60))).toBe('accepted')
    expect(send('d1', energy(T + 60, 60))).toBe('duplicate')
    expect(send('d1', power(T + 60, 60))).toBe('accepted') // another measurement
    expect(minuteWh(E1)).toEqual([60, 0])
    expect(engine.counters.duplicate).toBe(1)
  })

  it('rejects readings older than the site clock minus maxAgeS', () => {
    const { engine, send } = engineOf(plantOf())
    send('d1', energy(T + 700_000, 0))
    expect(send('d2', power(T, 10))).toBe('too_old')
    expect(engine.siteClock('s')).toBe(T + 700_000)
  })

  it('rejects a counter step implying more than 10 × rated power, and power out of range', () => {
    const { send } = engineOf(plantOf())
    send('d1', energy(T, 0))
    // 1,000,000 W × 10 = 1 MW limit: 60 s at 1.2 MW is 20,000 Wh
    expect(send('d1', energy(T + 60, 20_000))).toBe('out_of_range')
    expect(send('d1', energy(T + 60, 16_000))).toBe('accepted')
    expect(send('d1', power(T, -1001))).toBe('out_of_range')
    expect(send('d1', power(T, 1_000_001))).toBe('out_of_range')
    expect(powerInRange(100_000, -1000)).toBe(true)
  })

  it('accepts a reading older than the retained window, counted as approximated, without double counting', () => {
    const { engine, send, minuteWh } = engineOf(plantOf(), { retentionS: 60 })
    for (let i = 0; i <= 10; i++) send('d1', energy(T + i * 60, i * 60))
    const before = minuteWh(E1)
    expect(send('d1', energy(T + 30, 30))).toBe('accepted')
    expect(send('d1', energy(T + 30, 30))).toBe('accepted')
    expect(minuteWh(E1)).toEqual(before)
    expect(engine.counters.approximated).toBe(2)
  })
})
