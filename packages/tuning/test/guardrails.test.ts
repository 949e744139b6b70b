import { describe, expect, it } from 'vitest'
import { Tuner, type TunerState } from '../src/index.ts'
import { drive, T0, Toy, TUNING } from './toy.ts'

const SCOPE = 'yibin/electrode/coating-1/coater-1-oven'
const H = 3600

function running(tuning = TUNING): Tuner {
  const tuner = new Tuner(SCOPE, tuning)
  tuner.equipmentState('running', T0)
  return tuner
}

/** A tuner settled at the toy's optimum after 3 h. */
function settled(): { tuner: Tuner; toy: Toy; at: number } {
  const tuner = running()
  const toy = new Toy()
  toy.noise = 1.5
  drive(tuner, toy, T0, 3 * H)
  return { tuner, toy, at: T0 + 3 * H * 1000 }
}

describe('Tuner: the least setpoint in spec', () => {
  it('steps down from the rated setpoint to just above the least feasible one, never past min, max or maxStep', () => {
    const tuner = running()
    const toy = new Toy()
    toy.noise = 1.5
    const log = drive(tuner, toy, T0, 3 * H)
    expect(toy.feasible()).toBeCloseTo(38.5, 0)
    expect(toy.sp).toBeGreaterThanOrEqual(toy.feasible() - 0.05)
    expect(toy.sp).toBeLessThan(toy.feasible() * 1.02)
    expect(log.outputs.commands.length).toBeGreaterThanOrEqual(5)
    let from = 50
    for (const c of log.outputs.commands) {
      expect(c.value).toBeGreaterThanOrEqual(TUNING.min)
      expect(c.value).toBeLessThanOrEqual(TUNING.max)
      expect(Math.abs(c.value - from)).toBeLessThanOrEqual(TUNING.maxStep + 1e-9)
      from = c.value
    }
    // Savings: estimated from the power it saw, against the starting setpoint's.
    expect(tuner.savedWh).toBeGreaterThan(0)
  })

  it('keeps min and maxStep when the optimum is below min, and max when the constraint cannot be held', () => {
    const tuner = running()
    const toy = new Toy()
    toy.rate = 0.6 // f* = 23 Hz, below min
    const low = drive(tuner, toy, T0, 4 * H)
    expect(toy.sp).toBe(TUNING.min)
    toy.rate = 1.6 // f* = 61.6 Hz, above max
    const high = drive(tuner, toy, T0 + 4 * H * 1000, 4 * H)
    expect(toy.sp).toBe(TUNING.max)
    let from = 50
    for (const c of [...low.outputs.commands, ...high.outputs.commands]) {
      expect(c.value).toBeGreaterThanOrEqual(TUNING.min)
      expect(c.value).toBeLessThanOrEqual(TUNING.max)
      expect(Math.abs(c.value - from)).toBeLessThanOrEqual(TUNING.maxStep + 1e-9)
      from = c.value
    }
    expect(high.outputs.events.some((e) => e.status === 'held' && e.reason.includes('highest setpoint'))).toBe(true)
  })

  it('waits a dwell between moves (no two ordinary moves closer than dwellS)', () => {
    const tuner = running()
    const log = drive(tuner, new Toy(), T0, 2 * H)
    const sent = log.outputs.events.filter((e) => e.status === 'sent').map((e) => e.at)
    for (let i = 1; i < sent.length; i++) expect(sent[i]! - sent[i - 1]!).toBeGreaterThanOrEqual(360_000)
  })
})

describe('Tuner guardrails', () => {
  it('a breach steps back at once towards the last good setpoint and raises a constraint alert', () => {
    const { tuner, toy, at } = settled()
    const before = toy.sp
    toy.rate = 1.12 // the line speeds up: f* moves up ~12 %
    const log = drive(tuner, toy, at, 20 * 60)
    const raised = log.outputs.alerts.find((a) => a.kind === 'constraint' && a.state === 'raised')
    expect(raised).toBeDefined()
    const reverted = log.outputs.events.find((e) => e.status === 'reverted')
    expect(reverted).toBeDefined()
    expect(reverted!.to).toBeGreaterThan(before)
    expect(reverted!.to - reverted!.from).toBeLessThanOrEqual(TUNING.maxStep + 1e-9)
    // At once: the reverted command goes out at the breaching reading itself.
    expect(reverted!.at).toBe(raised!.at)
    expect(log.outputs.commands.some((c) => c.id === reverted!.id)).toBe(true)
    expect(log.outputs.alerts.some((a) => a.kind === 'constraint' && a.state === 'cleared')).toBe(true)
    expect(toy.ppm).toBeLessThanOrEqual(400)
  })

  it('holds while the constraint sensor is stale, and says why', () => {
    const { tuner, toy, at } = settled()
    toy.sensor = false
    toy.rate = 0.8 // would invite a move down, if the tuner could see it
    const log = drive(tuner, toy, at, 30 * 60)
    expect(log.outputs.commands).toEqual([])
    const held = log.outputs.events.filter((e) => e.status === 'held')
    expect(held).toHaveLength(1)
    expect(held[0]!.reason).toMatch(/solvent_ppm is stale/)
    expect(held[0]!.at).toBeGreaterThan(at + 600_000)
  })

  it('an unanswered command fails at commandTimeoutS of event time, raises a command alert and holds', () => {
    const tuner = running()
    const toy = new Toy()
    toy.device = 'silent'
    const log = drive(tuner, toy, T0, 45 * 60)
    expect(log.outputs.commands).toHaveLength(1)
    const sent = log.outputs.events.find((e) => e.status === 'sent')!
    const failed = log.outputs.events.find((e) => e.status === 'failed')!
    expect(failed.id).toBe(sent.id)
    expect(failed.at).toBe(sent.at + 600_000)
    expect(log.outputs.alerts).toContainEqual(expect.objectContaining({ kind: 'command', state: 'raised' }))
    expect(log.outputs.events.some((e) => e.status === 'held' && e.reason.includes('failed'))).toBe(true)
    // Holds for backoffS (1800 s) after the failure, then tries again.
    toy.device = 'apply'
    const later = drive(tuner, toy, T0 + 45 * 60 * 1000, H)
    const retried = later.outputs.events.find((e) => e.status === 'sent')!
    expect(retried.at).toBeGreaterThanOrEqual(failed.at + 1_800_000)
    expect(later.outputs.events.some((e) => e.status === 'applied')).toBe(true)
    expect(later.outputs.alerts).toContainEqual(expect.objectContaining({ kind: 'command', state: 'cleared' }))
  })

  it('a rejected command raises a command alert with the device reason and holds', () => {
    const tuner = running()
    const toy = new Toy()
    toy.device = 'reject'
    const log = drive(tuner, toy, T0, 30 * 60)
    expect(log.outputs.commands).toHaveLength(1)
    const rejected = log.outputs.events.find((e) => e.status === 'rejected')!
    expect(rejected.reason).toContain('local control')
    expect(log.outputs.alerts).toEqual([
      expect.objectContaining({ kind: 'command', state: 'raised', message: expect.stringContaining('local control') }),
    ])
    expect(toy.sp).toBe(50)
  })

  it('holds while the equipment is idle or off, or the device offline', () => {
    const { tuner, toy, at } = settled()
    for (const [what, act] of [
      ['the equipment is idle', (t: number) => tuner.equipmentState('idle', t)],
      ['the device is offline', (t: number) => tuner.deviceOnline(false, t)],
    ] as const) {
      const first = act(at)
      toy.rate = 0.8
      const log = drive(tuner, toy, at, H)
      expect(log.outputs.commands).toEqual([])
      expect(first.events).toEqual([expect.objectContaining({ status: 'held', reason: what })])
      tuner.equipmentState('running', at)
      tuner.deviceOnline(true, at)
      toy.rate = 1
    }
  })

  it('off only reports: no command even on a breach, but the constraint alert is raised', () => {
    const { tuner, toy, at } = settled()
    tuner.setMode('off', at)
    toy.rate = 1.2
    const log = drive(tuner, toy, at, H)
    expect(log.outputs.commands).toEqual([])
    expect(log.outputs.alerts.some((a) => a.kind === 'constraint' && a.state === 'raised')).toBe(true)
    expect(log.outputs.events.some((e) => e.status === 'held' && e.reason.startsWith('tuning is off'))).toBe(true)
  })
})

describe('Tuner advise mode', () => {
  it('proposes, waits for an approval, and applies after it', () => {
    const tuner = running({ ...TUNING, mode: 'advise' })
    const toy = new Toy()
    const log = drive(tuner, toy, T0, H)
    expect(log.outputs.commands).toEqual([])
    const proposed = log.outputs.events.filter((e) => e.status === 'proposed')
    expect(proposed).toHaveLength(1)
    expect(tuner.proposed).toEqual({ id: proposed[0]!.id, to: proposed[0]!.to })
    expect(toy.sp).toBe(50)

    expect(tuner.approve('no-such-event')).toBeUndefined()
    const approved = tuner.approve(proposed[0]!.id)!
    expect(approved.events.map((e) => e.status)).toEqual(['approved', 'sent'])
    expect(approved.commands).toEqual([expect.objectContaining({ id: proposed[0]!.id, value: proposed[0]!.to })])
    toy.pending.push(...approved.commands)
    const after = drive(tuner, toy, T0 + H * 1000, 60)
    expect(after.outputs.events).toContainEqual(expect.objectContaining({ id: proposed[0]!.id, status: 'applied' }))
    expect(toy.sp).toBe(proposed[0]!.to)
  })

  it('a rejected proposal sends nothing and holds', () => {
    const tuner = running({ ...TUNING, mode: 'advise' })
    const toy = new Toy()
    const log = drive(tuner, toy, T0, H)
    const id = tuner.proposed!.id
    const out = tuner.reject(id)!
    expect(out.events).toEqual([expect.objectContaining({ id, status: 'rejected' })])
    expect(out.commands).toEqual([])
    expect(tuner.proposed).toBeNull()
    const later = drive(tuner, toy, T0 + H * 1000, 20 * 60, 10, log)
    expect(later.outputs.commands).toEqual([])
  })

  it('PUT /api/v1/tuning style override: auto over an advise equipment applies, null gives the plant mode back', () => {
    const tuner = running({ ...TUNING, mode: 'advise' })
    tuner.setMode('auto', T0)
    expect(tuner.mode).toBe('auto')
    const log = drive(tuner, new Toy(), T0, H)
    expect(log.outputs.commands.length).toBeGreaterThan(0)
    tuner.setMode(null, T0 + H * 1000)
    expect(tuner.mode).toBe('advise')
  })
})

describe('Tuner state', () => {
  it('a restore from serialised state resumes without a jump: the same moves and ids as an uninterrupted tuner', () => {
    const a = running()
    const toyA = new Toy()
    toyA.noise = 1.5
    drive(a, toyA, T0, 2 * H + 123)
    const state = JSON.parse(JSON.stringify(a.toJSON())) as TunerState
    const b = Tuner.fromJSON(SCOPE, TUNING, state)
    const toyB = Object.assign(new Toy(), structuredClone({ ...toyA, pending: [...toyA.pending] }))
    expect(b.current).toBe(a.current)
    const at = T0 + (2 * H + 123) * 1000
    toyA.rate = toyB.rate = 1.1
    const logA = drive(a, toyA, at, 3 * H)
    const logB = drive(b, toyB, at, 3 * H)
    expect(logA.trace.length).toBeGreaterThan(3)
    expect(logB.trace).toEqual(logA.trace)
    expect(b.savedWh).toBeCloseTo(a.savedWh, 6)
  })

  it('ids derive from the equipment and the decision time: two runs give the same ids, two equipment different ones', () => {
    const run = (scope: string) => {
      const t = new Tuner(scope, TUNING)
      t.equipmentState('running', T0)
      return drive(t, new Toy(), T0, H).outputs.commands.map((c) => c.id)
    }
    const one = run(SCOPE)
    expect(one.length).toBeGreaterThan(2)
    expect(run(SCOPE)).toEqual(one)
    expect(run('yibin/electrode/coating-2/coater-2-oven')[0]).not.toBe(one[0])
    expect(new Set(one).size).toBe(one.length)
  })
})

describe('Tuner advise mode on a breach', () => {
  it('steps back at once even in advise mode (a proven setpoint), withdrawing an open proposal', () => {
    const { tuner, toy, at } = settled()
    tuner.setMode('advise', at)
    toy.rate = 1.12
    const log = drive(tuner, toy, at, 20 * 60)
    const reverted = log.outputs.events.find((e) => e.status === 'reverted')
    expect(reverted?.mode).toBe('advise')
    expect(log.outputs.commands.some((c) => c.id === reverted!.id)).toBe(true)
  })
})

describe('Tuners: one per tuned equipment of a plant', () => {
  it('switches every tuner at once and resumes from a checkpoint', async () => {
    const { Tuners } = await import('../src/index.ts')
    const equipment = (id: string, mode: 'auto' | 'advise') => ({
      id,
      type: 'oven',
      ratedPowerW: 250_000,
      devices: [`${id}-p`, `${id}-s`],
      tuning: { ...TUNING, mode },
    })
    const plant = {
      version: 1 as const,
      sites: [
        {
          id: 'yibin',
          name: 'Y',
          timezone: 'Asia/Shanghai',
          carbon: { gridGPerKWh: 600 },
          areas: [
            {
              id: 'a',
              name: 'A',
              lines: [{ id: 'l', name: 'L', equipment: [equipment('o1', 'auto'), equipment('o2', 'advise')] }],
            },
          ],
        },
      ],
    }
    const tuners = new Tuners(plant as never)
    expect([...tuners.byScope.keys()]).toEqual(['yibin/a/l/o1', 'yibin/a/l/o2'])
    tuners.setMode('off', () => T0)
    expect([...tuners.byScope.values()].map((t) => t.mode)).toEqual(['off', 'off'])
    tuners.setMode(null, () => T0)
    expect([...tuners.byScope.values()].map((t) => t.mode)).toEqual(['auto', 'advise'])
    const o2 = tuners.get('yibin/a/l/o2')!
    o2.equipmentState('running', T0)
    drive(o2, new Toy(), T0, 3600)
    const id = o2.proposed!.id
    expect(tuners.findProposal(id)).toBe(o2)
    const again = new Tuners(plant as never, {}, JSON.parse(JSON.stringify(tuners.toJSON())))
    expect(again.get('yibin/a/l/o2')!.proposed).toEqual(o2.proposed)
  })
})

describe('Tuner learns caution from breaches', () => {
  it('after a breach it settles further below the limit than before', () => {
    const { tuner, toy, at } = settled()
    const before = toy.steadyPpm()
    toy.rate = 1.12
    drive(tuner, toy, at, 30 * 60)
    toy.rate = 1
    drive(tuner, toy, at + 30 * 60_000, 3 * H)
    expect(before).toBeGreaterThan(375)
    expect(toy.steadyPpm()).toBeLessThan(before - 3)
    expect(toy.steadyPpm()).toBeLessThanOrEqual(380)
  })
})
