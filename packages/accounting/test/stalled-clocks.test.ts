import { describe, expect, it } from 'vitest'
import { StalledClocks } from '../src/stalled-clocks.ts'

describe('StalledClocks', () => {
  it('names a site once its clock has stood still for the interval, then at most once per interval', () => {
    const stalled = new StalledClocks(1000)
    const clocks = new Map<string, number | undefined>([
      ['a', 100],
      ['b', undefined],
    ])
    expect([...stalled.due(clocks, 0)]).toEqual([])
    expect([...stalled.due(clocks, 999)]).toEqual([])
    expect([...stalled.due(clocks, 1000)]).toEqual(['a'])
    expect([...stalled.due(clocks, 1500)]).toEqual([])
    expect([...stalled.due(clocks, 2000)]).toEqual(['a'])
    // A site without a clock yet is never named.
    expect(stalled.due(clocks, 10_000).has('b')).toBe(false)
  })

  it('starts over when the clock moves', () => {
    const stalled = new StalledClocks(1000)
    expect([...stalled.due([['a', 100]], 0)]).toEqual([])
    expect([...stalled.due([['a', 101]], 900)]).toEqual([])
    expect([...stalled.due([['a', 101]], 1800)]).toEqual([])
    expect([...stalled.due([['a', 101]], 1900)]).toEqual(['a'])
  })
})
