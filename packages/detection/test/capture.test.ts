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

  it('stores each reorder buffer as its typed array, without node:v8, copied at the beginning', () => {
    const h = harness()
    feedSpan(h, T0, T0 + 3600)
    const { buffer } = h.detection.checkpoint().sites[0]!
    expect(buffer.t.length).toBeGreaterThan(0)
    const capture = h.detection.beginCheckpoint()
    // Readings after the beginning change the live buffer, not the capture's copy.
    feedSpan(h, T0 + 3600, T0 + 3720)
    while (!capture.slice(() => true));
    const stored = capture.chunks[1]!
    expect(stored.byteLength).toBe(3 * 8 * buffer.t.length)
    const packed = new Float64Array(stored.slice().buffer)
    expect([...packed]).toEqual([...Array.from(buffer.t), ...Array.from(buffer.k), ...Array.from(buffer.v)])
  })

  it('reads a capture of version 1 (the reorder buffers as one node:v8 chunk)', () => {
    const h = harness()
    feedSpan(h, T0, T0 + 3600)
    const expected = deserialize(serialize(h.detection.checkpoint()))
    const copy = structuredClone(expected)
    const buffers = copy.sites.map((site: { buffer: unknown }) => site.buffer)
    const equipment = copy.sites.flatMap((site: { equipment: unknown[] }) => site.equipment)
    const counts = copy.sites.map((site: { equipment: unknown[] }) => site.equipment.length)
    for (const site of copy.sites) {
      site.buffer = { t: [], k: [], v: [] }
      site.equipment = []
    }
    const header = { format: 'plantwatt-detection-sliced', version: 1, checkpoint: copy, counts }
    const chunks = [
      serialize(header),
      serialize(buffers),
      serialize(equipment.slice(0, 1)),
      serialize(equipment.slice(1)),
    ]
    expect(decodeSlicedCheckpoint(chunks)).toEqual(expected)
  })
})
