import { describe, expect, it } from 'vitest'
import type { Tuner, TunerState } from '../src/index.ts'
import { Tuner as TunerClass } from '../src/index.ts'
import { runClosedLoop } from './sim-loop.ts'

// Issue 15's figures against the simulator's physics, in process (the broker-free closed loop of
// sim-loop.ts): a few ovens over 3 simulated days with production changes; the ≥ 200-equipment
// run is `pnpm bench:tuning` (docs/benchmarks.md).

describe('closed loop against the simulator physics', () => {
  // One 3-day run of the plant's 10 tuned ovens, judged by the tests below.
  let run: ReturnType<typeof runClosedLoop> | undefined
  const threeDays = () => {
    run ??= runClosedLoop({ devices: 400, hours: 72, reportIntervalS: 10 })
    return run
  }

  it('3 days from the rated setpoint: steady-state power within 3 % of the least feasible setpoint’s, < 1 % of the time above max', () => {
    const r = threeDays()
    expect(r.equipment.length).toBeGreaterThanOrEqual(6)
    for (const e of r.equipment) {
      expect(e.productionChanges, e.scope).toBeGreaterThan(10)
      expect(e.steadyS, e.scope).toBeGreaterThan(6 * 3600)
      expect(e.excess, e.scope).toBeLessThan(0.03)
      expect(e.excess, e.scope).toBeGreaterThan(-0.01)
      expect(e.aboveMaxS / r.durationS, e.scope).toBeLessThan(0.01)
      expect(e.moves, e.scope).toBeGreaterThanOrEqual(20)
    }
    // Every command within the guardrails.
    for (const c of r.commands) {
      expect(c.value).toBeGreaterThanOrEqual(30)
      expect(c.value).toBeLessThanOrEqual(50)
    }
    for (const e of r.events.filter((x) => x.status === 'sent')) {
      expect(Math.abs(e.to - e.from)).toBeLessThanOrEqual(2 + 1e-9)
    }
  }, 120_000)

  it('a checkpoint and restore every hour changes nothing: the same moves and ids', () => {
    const plain = runClosedLoop({ devices: 200, tuned: 2, hours: 12, reportIntervalS: 10 })
    const restored = runClosedLoop({
      devices: 200,
      tuned: 2,
      hours: 12,
      reportIntervalS: 10,
      everyHour: (tuners) => {
        const next = new Map<string, Tuner>()
        for (const [scope, t] of tuners) {
          const state = JSON.parse(JSON.stringify(t.toJSON())) as TunerState
          next.set(scope, TunerClass.fromJSON(scope, t.tuning, state))
        }
        return next
      },
    })
    expect(plain.commands.length).toBeGreaterThan(20)
    expect(restored.commands).toEqual(plain.commands)
    expect(restored.events).toEqual(plain.events)
  }, 60_000)

  it('reported savings within 5 % of the truth’s over the plant (10 % per equipment)', () => {
    const r = threeDays()
    let reported = 0
    let truth = 0
    for (const e of r.equipment) {
      expect(e.savedTrueWh, e.scope).toBeGreaterThan(0)
      expect(Math.abs(e.savedReportedWh / e.savedTrueWh - 1), e.scope).toBeLessThan(0.1)
      reported += e.savedReportedWh
      truth += e.savedTrueWh
    }
    expect(Math.abs(reported / truth - 1)).toBeLessThan(0.05)
  }, 120_000)
})
