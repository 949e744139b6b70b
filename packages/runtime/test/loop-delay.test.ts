import { describe, expect, it } from 'vitest'
import { startLoopDelayMonitor } from '../src/loop-delay.ts'

// The shared event-loop delay monitor of the benchmarks (issue 13): a loop held for a known time
// shows up as one sample at least that long, and a reset forgets it.

function holdLoop(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // busy on purpose: this is the stall to be measured
  }
}

/** Resolves after the monitor's timer has run a few times (setImmediate turns, not a sleep). */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setTimeout(resolve, 2))
}

describe('startLoopDelayMonitor', () => {
  it('reports a 60 ms stall as its max, and nothing after a reset', async () => {
    const monitor = startLoopDelayMonitor(1)
    try {
      await turns(5)
      holdLoop(60)
      await turns(5)
      const held = monitor.summary()
      expect(held.samples).toBeGreaterThan(0)
      expect(held.maxMs).toBeGreaterThanOrEqual(60)
      expect(held.p50Ms).toBeLessThan(held.maxMs)
      expect(held.resolutionMs).toBe(1)
      monitor.reset()
      expect(monitor.summary()).toMatchObject({ samples: 0, p99Ms: 0, maxMs: 0 })
      await turns(5)
      expect(monitor.summary().samples).toBeGreaterThan(0)
    } finally {
      monitor.stop()
    }
  })
})
