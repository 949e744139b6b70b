// Detection's checkpoint taken over several turns (issue 13, capture.ts): readings that change
// equipment between the turns must neither leak into the capture (it is the state of the moment it
// began, as checkpoint() was then) nor be disturbed by it (the live state goes on as without it).

import { deserialize, serialize } from 'node:v8'
import { decodeSlicedCheckpoint } from '@plantwatt/detection'
import { describe, expect, it } from 'vitest'
import { harness, output, power, T0 } from './helpers.ts'

function feedSpan(h: ReturnType<typeof harness>, from: number, to: number) {
  let i = 0
  for (let t = from; t < to; t += 5) {
    h.feed('mixer-p', power(t, i % 2 ? 300 : 50_000))
    h.feed('press-p', power(t, i % 7 < 3 ? 5_000 : 60_000))
    h.feed('press-o', output(t, Math.floor(i / 3)))
    h.feed('oven-p', power(t, 3_000 + (i % 5) * 20_000))
    i++
  }
}

describe('detection checkpoint over several turns', () => {
  it('is the state at its beginning, whatever readings change equipment meanwhile', () => {
    const h = harness()
    const twin = harness()
    feedSpan(h, T0, T0 + 3600)
    feedSpan(twin, T0, T0 + 3600)
    // node:v8 round trip: a deep copy, as the processor would write it.
    const expected = deserialize(serialize(h.detection.checkpoint()))

    const capture = h.detection.beginCheckpoint()
    expect(() => h.detection.beginCheckpoint()).toThrow(/already/)
    // One equipment per turn; between the turns, readings step every equipment (the watermark moves).
    let turns = 0
    let done = false
    let from = T0 + 3600
    while (!done) {
      done = capture.slice(() => false)
      turns++
      feedSpan(h, from, from + 120)
      feedSpan(twin, from, from + 120)
      from += 120
    }
    expect(turns).toBeGreaterThan(2)
    const captured = decodeSlicedCheckpoint(capture.chunks)
    expect(captured).toEqual(expected)
    // The capture changed nothing in the live state.
    expect(h.detection.checkpoint()).toEqual(twin.detection.checkpoint())
    // Finished: another may begin.
    h.detection.beginCheckpoint().close()
  })
})
