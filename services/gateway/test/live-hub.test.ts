import { LIVE_BATCH_INTERVAL_MS, type LiveBatch } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { LiveHub, type LiveSubscription, MAX_HOLD_MS } from '../src/live-hub.ts'
import { zeroFigures } from './processor-stand-in.ts'

// The gateway's live fan-out against the processor's paced batches (docs/internal-bus.md, "The
// gateway's side of the pacing"), on the test's wall clock: the hub's clock and its one timer are
// the test's, so the times frames go out at are exact. What a subscription receives is what the
// hub wrote to its sink. The timing through real sockets is test/e2e/live-pacing.test.ts's.

const plant = new PlantIndex(examplePlant())
const SITE = 'yibin'
const LINE_1 = 'yibin/electrode/coating-1'
const LINE_2 = 'yibin/electrode/coating-2'
/** Wall time 0 of each test; times below are offsets from it (site clocks too). */
const T0 = 1_796_600_000_000

/** `sendCostMs`: wall time each frame's send takes (a round of many frames holds the loop). */
function harness(sendCostMs = 0) {
  let now = T0
  let timers: { at: number; fn: () => void; live: boolean }[] = []
  const hub = new LiveHub({
    plant,
    now: () => now,
    schedule: (fn, delayMs) => {
      const timer = { at: now + delayMs, fn, live: true }
      timers.push(timer)
      return () => {
        timer.live = false
      }
    },
  })
  /** Moves the clock to `t`, firing the hub's timer at its exact time on the way. */
  const advanceTo = (offset: number) => {
    const t = T0 + offset
    for (;;) {
      const next = timers.filter((timer) => timer.live && timer.at <= t).sort((a, b) => a.at - b.at)[0]
      if (!next) break
      now = next.at
      next.live = false
      timers = timers.filter((timer) => timer.live)
      next.fn()
    }
    now = t
  }
  const frames = new Map<string, { t: number; at: number | null; powerW: number }[]>()
  const subscribe = (id: string, scope: string) => {
    frames.set(id, [])
    const subscription: LiveSubscription = {
      id,
      scope,
      sink: {
        ready: () => true,
        send: (text) => {
          const frame = JSON.parse(text) as { at: number | null; powerW: number }
          frames.get(id)!.push({ t: now - T0, at: frame.at === null ? null : frame.at - T0, powerW: frame.powerW })
          now += sendCostMs
        },
      },
      sentVersion: -1,
      lastSentAt: 0,
    }
    hub.subscribe(subscription)
    return subscription
  }
  /** A paced batch of the site: its clock `at` and these scopes' figures (power `powerW`). */
  const paced = (at: number, scopes: string[], powerW: number): LiveBatch => ({
    site: SITE,
    at: T0 + at,
    gridGPerKWh: 500,
    scopes: scopes.map((scope) => ({ ...zeroFigures(scope, T0 + at, 500), powerW })),
  })
  const times = (id: string) => frames.get(id)!.map(({ t }) => t)
  return { hub, advanceTo, frames, subscribe, paced, times }
}

/** CONTRACT.md §5, strictly, on the hub's clock: never two frames within a second. */
function expectOneASecond(times: number[]) {
  for (let k = 1; k < times.length; k++) expect(times[k]! - times[k - 1]!).toBeGreaterThanOrEqual(1000)
}

describe('LiveHub against paced batches', () => {
  it('sends each batch as it arrives, and holds one the bus brought early until the second is up', () => {
    const { hub, advanceTo, subscribe, paced, times, frames } = harness()
    subscribe('a', SITE)
    hub.apply({ ...paced(0, [SITE], 100), answer: true })
    advanceTo(LIVE_BATCH_INTERVAL_MS)
    hub.apply(paced(1000, [SITE], 200))
    // The next batch arrives 985 ms after the last frame (the bus's jitter): held 15 ms, not a round.
    advanceTo(LIVE_BATCH_INTERVAL_MS + 985)
    hub.apply(paced(2000, [SITE], 300))
    expect(times('a')).toEqual([0, LIVE_BATCH_INTERVAL_MS])
    advanceTo(3000)
    expect(times('a')).toEqual([0, LIVE_BATCH_INTERVAL_MS, LIVE_BATCH_INTERVAL_MS + 1000])
    expect(frames.get('a')!.at(-1)).toMatchObject({ at: 2000, powerW: 300 })
    expect(hub.framesHeld).toBe(1)
    expect(hub.framesRephased).toBe(0)
  })

  it('joins a subscription off its site’s phase with the next batch instead of holding every batch', () => {
    const { hub, advanceTo, subscribe, paced, times, frames } = harness()
    subscribe('a', SITE)
    hub.apply({ ...paced(0, [SITE], 100), answer: true })
    advanceTo(1025)
    hub.apply(paced(1000, [SITE], 200))
    // A new subscription to the held site scope gets its snapshot at once, from the gateway's copy.
    advanceTo(1600)
    subscribe('c', SITE)
    // One to a scope not held waits for the processor's answer, which goes to it alone; an answer
    // for the site scope (another gateway's new interest) sends nothing to a and c.
    advanceTo(1700)
    subscribe('b', LINE_1)
    hub.apply({ ...paced(1000, [LINE_1], 50), answer: true })
    hub.apply({ ...paced(1000, [SITE], 250), answer: true })
    expect(times('a')).toEqual([0, 1025])
    expect(times('b')).toEqual([1700])
    expect(times('c')).toEqual([1600])

    // The next batch: a is due; b and c would be held 650 and 550 ms: they let it pass.
    advanceTo(2050)
    hub.apply(paced(2000, [SITE, LINE_1], 300))
    expect(times('a')).toEqual([0, 1025, 2050])
    expect(times('b')).toEqual([1700])
    expect(hub.framesRephased).toBe(2)
    // A round over every subscription after their second does not send the passed batch's
    // figures either.
    advanceTo(2800)
    hub.flush()
    expect(times('c')).toEqual([1600])
    // The batch after goes to all three as it arrives: in phase from now on.
    advanceTo(3075)
    hub.apply(paced(3000, [SITE, LINE_1], 400))
    for (const id of ['a', 'b', 'c']) expect(times(id).at(-1)).toBe(3075)
    expect(frames.get('b')!.at(-1)).toMatchObject({ at: 3000, powerW: 400 })
    // And the answer's figures for the site went with it, not before: c's frames are its snapshot
    // and this batch.
    expect(frames.get('c')!.map(({ powerW }) => powerW)).toEqual([200, 400])
    for (const id of ['a', 'b', 'c']) expectOneASecond(times(id))
  })

  it('sends a passed batch’s figures a batch interval and MAX_HOLD_MS later when no batch follows', () => {
    const { hub, advanceTo, subscribe, paced, times, frames } = harness()
    subscribe('a', SITE)
    hub.apply({ ...paced(0, [SITE], 100), answer: true })
    advanceTo(300)
    subscribe('d', LINE_2)
    hub.apply({ ...paced(0, [LINE_2], 10), answer: true })
    advanceTo(1025)
    hub.apply(paced(1000, [SITE, LINE_2], 20))
    expect(times('d')).toEqual([300])
    // Nothing changes any more: the passed figures go on the timer, not never.
    advanceTo(5000)
    expect(times('d')).toEqual([300, 1025 + LIVE_BATCH_INTERVAL_MS + MAX_HOLD_MS])
    expect(frames.get('d')!.at(-1)).toMatchObject({ at: 1000, powerW: 20 })
    expect(times('a')).toEqual([0, 1025])
  })

  it('keeps subscriptions late in a long round in phase: each batch goes as it arrives', () => {
    // 40 subscriptions, 2 ms per frame: a round of 80 ms, longer than the pacing's 25 ms margin.
    // Judged by the time the round began, the last ones' second is not up when the next batch
    // arrives; judged at their own send, it is, and §5 holds strictly.
    const { hub, advanceTo, subscribe, paced, times } = harness(2)
    const ids = Array.from({ length: 40 }, (_, k) => `s${k}`)
    for (const id of ids) subscribe(id, SITE)
    hub.apply({ ...paced(0, [SITE], 100), answer: true })
    const batches = 20
    for (let k = 1; k <= batches; k++) {
      advanceTo(k * LIVE_BATCH_INTERVAL_MS)
      hub.apply(paced(k * 1000, [SITE], 100 + k))
    }
    for (const id of ids) {
      expect(times(id)).toHaveLength(batches + 1)
      expectOneASecond(times(id))
    }
    expect(hub.framesHeld).toBe(0)
    expect(hub.framesRephased).toBe(0)
  })

  it('sends a batch of another site to none of this site’s held subscriptions', () => {
    const { hub, advanceTo, subscribe, paced, times } = harness()
    subscribe('a', SITE)
    hub.apply({ ...paced(0, [SITE], 100), answer: true })
    advanceTo(500)
    hub.apply(paced(500, [SITE], 200))
    // Another site's clock moves at 900 and at 1,100: a's held change keeps its own timer.
    advanceTo(900)
    hub.apply({ site: 'elsewhere', at: T0 + 900, gridGPerKWh: 1, scopes: [] })
    expect(times('a')).toEqual([0])
    advanceTo(1100)
    hub.apply({ site: 'elsewhere', at: T0 + 1100, gridGPerKWh: 1, scopes: [] })
    expect(times('a')).toEqual([0])
    advanceTo(1625)
    expect(times('a')).toEqual([0, 500 + LIVE_BATCH_INTERVAL_MS + MAX_HOLD_MS])
  })
})
