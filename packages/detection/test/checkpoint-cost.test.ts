// Detection's checkpoint is taken on the processor's event loop every 60 s (issue 13): what it
// copies per equipment must be flat typed arrays (node:v8 copies each whole) rather than an object
// per histogram bin or per remembered step, and the state must come back exactly through node:v8
// (the state store) and through JSON (older tests and tools).

import { deserialize, serialize } from 'node:v8'
import { Detection } from '@plantwatt/detection'
import { describe, expect, it } from 'vitest'
import { harness, power, T0 } from './helpers.ts'

const ports = { energyBetween: () => ({ wh: 0, co2G: 0 }), onIdleSpan: () => {} }

describe('detection checkpoint', () => {
  function fed() {
    const h = harness()
    let i = 0
    // Two hours of a mixer stepping between idle and running: histograms learned, steps remembered.
    for (let t = T0; t < T0 + 2 * 3600; t += 5) h.feed('mixer-p', power(t, i++ % 2 ? 300 : 50_000))
    return h
  }

  it('holds histograms and remembered steps as typed arrays', () => {
    const checkpoint = fed().detection.checkpoint()
    const equipment = checkpoint.sites.flatMap((s) => s.equipment)
    expect(equipment.length).toBeGreaterThan(0)
    for (const eq of equipment) {
      expect(ArrayBuffer.isView(eq.anomaly.histogram.count)).toBe(true)
      if (eq.learner) expect(ArrayBuffer.isView(eq.learner.histogram.count)).toBe(true)
      if (eq.recent !== undefined) expect(ArrayBuffer.isView(eq.recent)).toBe(true)
    }
  })

  it('comes back exactly through node:v8 and through JSON', () => {
    const h = fed()
    const checkpoint = h.detection.checkpoint()
    const viaV8 = Detection.restore(h.plant, ports, deserialize(serialize(checkpoint)))
    expect(viaV8.checkpoint()).toEqual(checkpoint)
    const viaJson = Detection.restore(h.plant, ports, JSON.parse(JSON.stringify(checkpoint)))
    expect(JSON.parse(JSON.stringify(viaJson.checkpoint()))).toEqual(JSON.parse(JSON.stringify(checkpoint)))
  })
})
