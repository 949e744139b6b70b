// Offline devices (CONTRACT.md §7), judged on the watermark (site clock − latenessS).

import { describe, expect, it } from 'vitest'
import { harness, OVEN, power, T0 } from './helpers.ts'

describe('offline', () => {
  it('raises once the site clock passes the latest reading by more than offlineAfterS (+ lateness), clears when it reports again', () => {
    const h = harness()
    // The oven reports every 60 s until T0 + 600, then falls silent; the PV meter keeps the clock going.
    for (let t = T0; t <= T0 + 600; t += 60) h.feed('oven-p', power(t, 80_000))
    for (let t = T0; t <= T0 + 1560; t += 30) h.feed('pv-1', power(t, 5000))
    // Watermark = 1560 − 60 = 1500 = last + 900: not yet *more* than offlineAfterS.
    expect(h.take().filter((a) => a.kind === 'offline')).toEqual([])
    expect(h.detection.deviceStatus('oven-p')).toBe('online')
    h.feed('pv-1', power(T0 + 1561, 5000))
    const [raised] = h.take().filter((a) => a.kind === 'offline')
    expect(raised).toMatchObject({
      state: 'raised',
      scope: OVEN,
      since: (T0 + 600) * 1000,
      at: (T0 + 1500) * 1000,
      severity: 'warning',
      data: { deviceId: 'oven-p', lastSeen: (T0 + 600) * 1000 },
    })
    expect(h.detection.deviceStatus('oven-p')).toBe('offline')
    // It reports again at T0 + 2000; the clear is released once the watermark passes it.
    h.feed('oven-p', power(T0 + 2000, 80_000))
    h.clock(T0 + 2061)
    const [cleared] = h.take().filter((a) => a.kind === 'offline')
    expect(cleared).toMatchObject({
      id: raised!.id,
      state: 'cleared',
      at: (T0 + 2000) * 1000,
      data: { durationS: 1400 },
    })
    expect(h.detection.deviceStatus('oven-p')).toBe('online')
  })

  it('a device that never reported is unknown, never offline; meters alert on the site scope', () => {
    const h = harness()
    h.feed('pv-1', power(T0, 1000))
    h.feed('oven-p', power(T0, 1000))
    h.clock(T0 + 10_000)
    const offline = h.take().filter((a) => a.kind === 'offline')
    expect(offline.map((a) => [a.scope, a.data.deviceId]).sort()).toEqual([
      ['s', 'pv-1'],
      ['s/a/l/oven', 'oven-p'],
    ])
    expect(h.detection.deviceStatus('press-p')).toBe('unknown')
    expect(h.detection.deviceStatus('mixer-p')).toBe('unknown')
  })

  it('a silence fully inside one late batch is still an offline episode (raise then clear)', () => {
    const h = harness({}, undefined)
    h.feed('pv-1', power(T0, 1000))
    h.feed('oven-p', power(T0, 1000))
    // The oven's next reading comes 1000 s later, arriving before the watermark reached T0 + 900.
    h.feed('oven-p', power(T0 + 1000, 1000))
    h.feed('pv-1', power(T0 + 1000, 1000))
    h.clock(T0 + 1100)
    const offline = h.take().filter((a) => a.kind === 'offline' && a.data.deviceId === 'oven-p')
    expect(offline.map((a) => [a.state, a.since / 1000 - T0, a.at / 1000 - T0])).toEqual([
      ['raised', 0, 900],
      ['cleared', 0, 1000],
    ])
  })

  it('checks cheaply: 40,000 devices, one advance, no scan per reading', () => {
    const devices = Array.from({ length: 40_000 }, (_, i) => `d${i}`)
    const model = {
      version: 1,
      sites: [
        {
          id: 's',
          timezone: 'UTC',
          carbon: { gridGPerKWh: 500, residualMixGPerKWh: 600, greenShare: 0 },
          meters: { pv: devices, grid: [] },
          areas: [],
        },
      ],
    }
    const h = harness({}, model as never)
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < devices.length; i++) h.feed(devices[i]!, power(T0 + round * 60 + (i % 60), 1))
    }
    expect(h.take()).toEqual([])
    // Every tenth device falls silent; the rest keep going past the offline limit.
    for (let t = T0 + 300; t <= T0 + 1400; t += 60) {
      for (let i = 0; i < devices.length; i++) if (i % 10 !== 0) h.feed(devices[i]!, power(t + (i % 60), 1))
    }
    const offline = h.take().filter((a) => a.state === 'raised')
    expect(offline.length).toBe(4000)
  }, 30_000)
})
