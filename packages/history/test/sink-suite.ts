import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { encodeLine } from '../src/line-protocol.ts'
import type { HistoryPoint } from '../src/point.ts'
import { bucketPoint } from '../src/points.ts'
import type { HistorySink } from '../src/sink.ts'

/**
 * What every HistorySink must do (STYLE.md habit 5, as aedes-persistence's abstract.js): run by
 * the in-memory twin and by HistoryWriter against a fake sender, an HTTP stub and VictoriaMetrics.
 * `open` gives a sink (not started) and a way to read back the lines the store received, in order.
 */
export interface SinkFixture {
  sink: HistorySink
  /** Lines received by the store so far, in arrival order. */
  received: () => Promise<string[]>
  close: () => Promise<void>
}

export function sinkSuite(name: string, open: () => Promise<SinkFixture>) {
  describe(`HistorySink contract: ${name}`, () => {
    let fixture: SinkFixture

    beforeEach(async () => {
      fixture = await open()
    })
    afterEach(async () => {
      await fixture.sink.stop()
      await fixture.close()
    })

    const base = Date.now() - 3_600_000
    const bucket = (i: number, energyWh = i): HistoryPoint =>
      bucketPoint({
        scope: 'yibin/electrode/coating-1',
        step: '1m',
        t: base + i * 60_000,
        energyWh,
        co2G: 2 * i,
        co2MarketG: i,
        idleWh: 0,
        peakW: 1000 + i,
        revision: 0,
      })

    it('refuses writes before start and after stop, and stop is safe twice', async () => {
      const { sink } = fixture
      expect(() => sink.write([bucket(1)])).toThrow(/write while/)
      await sink.start()
      await sink.stop()
      await sink.stop()
      expect(() => sink.write([bucket(1)])).toThrow(/write while/)
    })

    it('delivers every point once, in write order', async () => {
      const { sink } = fixture
      await sink.start()
      const points = Array.from({ length: 250 }, (_, i) => bucket(i))
      sink.write(points.slice(0, 100))
      sink.write(points.slice(100))
      expect(await sink.drain(10_000)).toBe(true)
      expect(await fixture.received()).toEqual(points.map((p) => encodeLine(p)))
      const stats = sink.stats()
      expect(stats.accepted).toBe(250)
      expect(stats.written).toBe(250)
      expect(stats.queuedMemory + stats.queuedDisk).toBe(0)
      expect(stats.healthy).toBe(true)
    })

    it('refuses and counts NaN/Infinity and other bad points without throwing, keeping the rest', async () => {
      const { sink } = fixture
      await sink.start()
      const good = [bucket(1), bucket(2)]
      const bad: HistoryPoint[] = [
        bucket(3, Number.NaN),
        bucket(4, Number.POSITIVE_INFINITY),
        { measurement: 'bucket', tags: { site: 'a' }, fields: {}, timeMs: base },
        { measurement: 'bucket', tags: { site: 'a\nb' }, fields: { v: 1 }, timeMs: base },
        { measurement: 'bucket', tags: {}, fields: { v: 1 }, timeMs: Number.NaN },
      ]
      expect(() => sink.write([good[0]!, ...bad, good[1]!])).not.toThrow()
      expect(await sink.drain(10_000)).toBe(true)
      expect(await fixture.received()).toEqual(good.map((p) => encodeLine(p)))
      const stats = sink.stats()
      expect(stats.refused.non_finite).toBe(2)
      expect(stats.refused.no_fields).toBe(1)
      expect(stats.refused.invalid_name).toBe(1)
      expect(stats.refused.invalid_time).toBe(1)
      expect(stats.accepted).toBe(2)
    })

    it('gives a fresh stats object each call', async () => {
      const { sink } = fixture
      await sink.start()
      const a = sink.stats()
      a.refused.non_finite = 99
      a.written = 99
      expect(sink.stats().refused.non_finite).toBe(0)
      expect(sink.stats().written).toBe(0)
    })
  })
}
