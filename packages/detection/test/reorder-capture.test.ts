// A reorder buffer's checkpoint copy taken over several turns (issue 13, ReorderBuffer.beginCapture):
// readings pushed and released between the steps, including enough to grow the buffer and to
// empty it (both replace its arrays), must neither leak into the copy (it is pack() at the
// beginning) nor change what the buffer releases (the same as a twin without a capture).

import { describe, expect, it } from 'vitest'
import { ReorderBuffer } from '../src/reorder-buffer.ts'

/** A small deterministic PRNG (mulberry32): the same readings on every run. */
function rng(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('reorder buffer captured over several turns', () => {
  it('copies the buffer as it was at the beginning, whatever is pushed and released meanwhile', () => {
    const random = rng(5)
    let captures = 0
    for (const [fill, pushes, releaseTo] of [
      [300, 40, 200], // a few changes between steps
      [200, 400, 100], // grows past its capacity during the capture
      [300, 20, 10_000], // empties (and shrinks) during the capture
    ] as const) {
      const live = new ReorderBuffer()
      const twin = new ReorderBuffer()
      let now = 1000
      const push = (time: number) => {
        const order = Math.floor(random() * 50)
        const value = Math.round(random() * 1e6)
        live.push(time, order, value)
        twin.push(time, order, value)
      }
      for (let i = 0; i < fill; i++) push(now + Math.floor(random() * 200))
      const expected = [...live.pack()]
      const capture = live.beginCapture()
      expect(() => live.beginCapture()).toThrow(/already/)
      const a = new Float64Array(3)
      const b = new Float64Array(3)
      let steps = 0
      let done = false
      while (!done) {
        done = capture.step(7)
        steps++
        now += 5
        for (let i = 0; i < pushes / 10; i++) push(now + Math.floor(random() * 200))
        // Release what is before a watermark that moves on: the twin releases the same.
        const watermark = Math.min(now + releaseTo / 50, now + releaseTo)
        while (live.popBefore(watermark, a)) {
          expect(twin.popBefore(watermark, b)).toBe(true)
          expect([...a]).toEqual([...b])
        }
        expect(twin.popBefore(watermark, b)).toBe(false)
      }
      expect(steps).toBeGreaterThan(1)
      expect([...capture.packed]).toEqual(expected)
      expect([...live.pack()]).toEqual([...twin.pack()])
      // Detached: another capture may begin, and writes no longer reach this one.
      live.beginCapture().close()
      captures++
    }
    expect(captures).toBe(3)
  })
})
