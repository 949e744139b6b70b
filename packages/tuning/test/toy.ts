// A small process for the guardrail tests, with the shape of the simulator's oven (equipment.ts):
// the fan follows its setpoint with a 15 s lag, the solvent concentration settles with a 40 s lag
// at base + K × rate / (f / fRated), power = fixed + fan × (f / fRated)³. The device applies a
// command at its next reading and acks it (or rejects it, or never answers).

import type { SetpointCommand, Tuning } from '@plantwatt/contract'
import { emptyOutput, type Tuner, type TunerOutput } from '../src/index.ts'

export const TUNING: Tuning = {
  setpoint: 'fan_hz',
  unit: 'Hz',
  min: 30,
  max: 50,
  maxStep: 2,
  constraint: { measure: 'solvent_ppm', max: 400, margin: 0.05 },
  mode: 'auto',
  commandTimeoutS: 600,
}

export const T0 = Date.UTC(2026, 0, 5, 8, 0, 0)

export type DeviceBehaviour = 'apply' | 'reject' | 'silent'

export class Toy {
  sp = 50
  f = 50
  rate = 1
  ppm: number
  readonly base = 20
  readonly k = 0.77 * 360
  device: DeviceBehaviour = 'apply'
  /** false: the constraint sensor stops reporting (power and setpoint still do). */
  sensor = true
  pending: SetpointCommand[] = []
  noise = 0
  private n = 0

  constructor() {
    this.ppm = this.steadyPpm()
  }

  steadyPpm(): number {
    return this.base + (this.k * this.rate) / (this.f / 50)
  }

  /** The least setpoint keeping the steady concentration at max × (1 − margin) = 380. */
  feasible(): number {
    return (50 * this.k * this.rate) / (380 - this.base)
  }

  powerW(): number {
    return 100_000 + 50_000 * (this.f / 50) ** 3
  }

  step(dtS: number): void {
    this.f += (this.sp - this.f) * (1 - Math.exp(-dtS / 15))
    this.ppm += (this.steadyPpm() - this.ppm) * (1 - Math.exp(-dtS / 40))
  }

  /** A deterministic ±noise wobble (no randomness: tests must be exact). */
  wobble(): number {
    this.n++
    return this.noise * Math.sin(this.n * 1.7)
  }
}

export interface DriveLog {
  outputs: TunerOutput
  /** Every output, in order, for exact comparisons. */
  trace: string[]
}

/**
 * Runs the toy process and the tuner from `fromMs` for `seconds`, a reading every `stepS`. Commands
 * reach the device at once and are applied (and acked at that reading's time) at its next reading.
 */
export function drive(
  tuner: Tuner,
  toy: Toy,
  fromMs: number,
  seconds: number,
  stepS = 10,
  log: DriveLog = { outputs: emptyOutput(), trace: [] },
): DriveLog {
  const take = (o: TunerOutput) => {
    log.outputs.commands.push(...o.commands)
    log.outputs.events.push(...o.events)
    log.outputs.alerts.push(...o.alerts)
    log.outputs.saved.push(...o.saved)
    if (o.commands.length + o.events.length + o.alerts.length > 0) {
      log.trace.push(JSON.stringify({ c: o.commands, e: o.events, a: o.alerts }))
    }
    toy.pending.push(...o.commands)
  }
  for (let s = stepS; s <= seconds; s += stepS) {
    const t = fromMs + s * 1000
    toy.step(stepS)
    const acks = toy.pending.splice(0)
    const reading = {
      t,
      setpoint: toy.sp,
      powerW: toy.powerW(),
      ...(toy.sensor ? { constraint: Math.round((toy.ppm + toy.wobble()) * 10) / 10 } : {}),
    }
    take(tuner.reading(reading))
    for (const c of acks) {
      if (toy.device === 'apply') {
        toy.sp = c.value
        take(tuner.ack({ id: c.id, status: 'applied', t }))
      } else if (toy.device === 'reject') {
        take(tuner.ack({ id: c.id, status: 'rejected', reason: 'local control', t }))
      }
    }
  }
  return log
}
