import { describe, expect, it } from 'vitest'
import { type PacerClock, PublishPacer } from '../src/publish-pacer.ts'

// The pacer of CONTRACT.md §4 (issue 12 finding 10) on a hand-driven clock: publishes over the
// rate wait in order and are let through as tokens refill; none is dropped below the queue bound.

function manualClock() {
  let now = 0
  const timers: { at: number; callback: () => void }[] = []
  const clock: PacerClock = {
    now: () => now,
    schedule(callback, ms) {
      const timer = { at: now + ms, callback }
      timers.push(timer)
      return () => timers.splice(timers.indexOf(timer), 1)
    },
  }
  const advance = (ms: number) => {
    now += ms
    for (let due = timers.find((t) => t.at <= now); due; due = timers.find((t) => t.at <= now)) {
      timers.splice(timers.indexOf(due), 1)
      due.callback()
    }
  }
  return { clock, advance, pending: () => timers.length }
}

describe('PublishPacer', () => {
  it('lets a burst through, then one publish per 1/rate, in arrival order, and reports the slowed time', () => {
    const { clock, advance } = manualClock()
    const resumed: number[] = []
    const pacer = new PublishPacer(10, 3, 100, clock, (ms) => resumed.push(ms))
    const ran: number[] = []
    const admissions = Array.from({ length: 6 }, (_, i) => pacer.admit(() => ran.push(i)))
    expect(admissions).toEqual(['now', 'now', 'now', 'queued', 'queued', 'queued'])
    expect(ran).toEqual([0, 1, 2])
    expect(pacer.slowed).toBe(true)
    advance(100)
    expect(ran).toEqual([0, 1, 2, 3])
    // A publish arriving while others wait queues behind them, even if a token were there.
    expect(pacer.admit(() => ran.push(6))).toBe('queued')
    advance(300)
    expect(ran).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(pacer.slowed).toBe(false)
    expect(resumed).toEqual([400])
  })

  it('refuses only past its queue bound, and forgets what waits when closed', () => {
    const { clock, advance, pending } = manualClock()
    const pacer = new PublishPacer(1, 1, 2, clock)
    const ran: number[] = []
    expect([0, 1, 2, 3].map((i) => pacer.admit(() => ran.push(i)))).toEqual(['now', 'queued', 'queued', 'full'])
    pacer.close()
    expect(pending()).toBe(0)
    advance(10_000)
    expect(ran).toEqual([0])
  })
})
