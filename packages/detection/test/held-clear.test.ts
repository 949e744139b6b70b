// An idle clear is held until the minute holding the episode's end is final (the watermark, site
// clock − latenessS, is latenessS past that minute's end), and its figures are asked of the port
// then — so they do not depend on how much of that minute had arrived at the transition (§7). A
// raise of the same equipment while its clear is held follows the clear. Held events survive a
// checkpoint.

import type { Alert } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { Detection, type DetectionPorts } from '../src/index.ts'
import { OVEN, power, smallPlant, T0 } from './helpers.ts'

// T0 is a minute boundary; latenessS is 60 s.
const LATENESS_S = 60

function setup() {
  const model = smallPlant()
  const oven = model.sites[0]!.areas[0]!.lines[0]!.equipment.find((e) => e.id === 'oven')!
  oven.idle = { offBelowW: 2000, runAboveW: 60_000, afterS: 20 }
  const plant = new PlantIndex(model)
  const calls: { fromS: number; toS: number; clockS: number | undefined }[] = []
  const spans: [number, number | undefined][] = []
  // What accounting would answer: it changes as readings come in, so the answer is the port's at
  // the moment it is asked.
  const port = { whPerS: 1 }
  let detection: Detection | undefined
  const ports: DetectionPorts = {
    energyBetween: (_scope, fromS, toS) => {
      calls.push({ fromS, toS, clockS: detection?.siteClockS('s') })
      const wh = (toS - fromS) * port.whPerS
      return { wh, co2G: wh / 2 }
    },
    onIdleSpan: (_scope, startS, endS) => spans.push([startS - T0, endS === undefined ? undefined : endS - T0]),
  }
  detection = new Detection(plant, ports)
  const events: Alert[] = []
  const take = (d: Detection) => {
    for (const e of d.takeAlertEvents()) events.push(e.event)
  }
  const feed = (d: Detection, fromS: number, toS: number, watts: (t: number) => number) => {
    for (let t = fromS; t <= toS; t += 10) {
      d.observe(plant.device('oven-p')!, power(t, watts(t)))
      take(d)
    }
  }
  // Idle (30 kW) from T0, running (80 kW) at T0 + 50, idle again from T0 + 60.
  const watts = (t: number) => (t - T0 === 50 ? 80_000 : 30_000)
  return { plant, detection, ports, port, calls, spans, events, take, feed, watts }
}

const rel = (a: Alert) => [a.state, a.since / 1000 - T0, a.at / 1000 - T0]

describe('a held idle clear', () => {
  it('is emitted once its minute is final, with the figures of that moment; a re-raise follows it', () => {
    const { detection: d, port, calls, spans, events, take, feed, watts } = setup()
    feed(d, T0, T0 + 150, watts)
    // Watermark T0 + 90: episode 1 (raised at T0 + 20) ended at T0 + 50 and episode 2 started at
    // T0 + 60, raised at T0 + 80. Accounting heard of both at once; the clear and the new raise wait.
    expect(events.map(rel)).toEqual([['raised', 0, 20]])
    expect(spans).toEqual([
      [0, undefined],
      [0, 50],
      [60, undefined],
    ])
    expect(d.idleNow(OVEN)).toEqual({ count: 1, powerW: 30_000 })
    expect(calls).toEqual([])
    expect(d.openAlerts(OVEN).map(rel)).toEqual([['raised', 0, 20]])

    // Due when the watermark reaches the end of the minute holding T0 + 50 (T0 + 60) + latenessS.
    const dueS = T0 + 60 + LATENESS_S
    d.advance('s', dueS + LATENESS_S - 1)
    take(d)
    expect(events).toHaveLength(1)
    port.whPerS = 2
    d.advance('s', dueS + LATENESS_S)
    take(d)
    expect(calls).toEqual([{ fromS: T0, toS: T0 + 50, clockS: dueS + LATENESS_S }])
    expect(events.map(rel)).toEqual([
      ['raised', 0, 20],
      ['cleared', 0, 50],
      ['raised', 60, 80],
    ])
    const [first, cleared, again] = events
    expect(cleared!.id).toBe(first!.id)
    expect(cleared!.data).toEqual({ powerW: 30_000, durationS: 50, wastedWh: 100, wastedCo2G: 50 })
    expect(again!.data).toEqual({ powerW: 30_000, flapping: true, previousId: first!.id })
    // One open alert per (scope, kind); seq in the order emitted.
    expect(d.openAlerts(OVEN).map(rel)).toEqual([['raised', 60, 80]])
    const seqs = d.alertsSince(0).events.map((e) => e.seq)
    expect(seqs).toEqual([1, 2, 3])
  })

  it('survives a checkpoint and restore', () => {
    const a = setup()
    a.feed(a.detection, T0, T0 + 150, a.watts)
    const json = JSON.parse(JSON.stringify(a.detection.checkpoint()))
    const b = setup()
    const restored = Detection.restore(b.plant, b.ports, json)
    for (const d of [a.detection, restored]) d.advance('s', T0 + 400)
    a.take(a.detection)
    b.take(restored)
    expect(b.events.map(rel)).toEqual([
      ['cleared', 0, 50],
      ['raised', 60, 80],
    ])
    expect(a.events.slice(1)).toEqual(b.events)
    expect(restored.alertsSince(0).events).toEqual(a.detection.alertsSince(0).events)
  })
})
