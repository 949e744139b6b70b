// Savings: the energy the equipment would have drawn at its starting setpoint under the same
// production, minus what it drew. The tuner has no model of the machine, so the power it would
// have drawn is estimated from what it saw: every move is a small experiment, the median power of
// the settled window after it minus the one before it (same production, a few minutes apart).
// Those differences are fitted, by least squares through the origin, to
//   ΔP = a × Δs + b × Δ(s³)      (s: the setpoint)
// — a part linear in the setpoint (heat carried off by the air) and the fan affinity law's cube,
// each kept only if the data give it a positive weight (b = 0 when the moves do not show a cube).
// Moves of the line's production between the two windows make a few wild differences: samples
// further than 3 MADs of the residuals from the first fit are dropped and the fit repeated.
// Nothing is claimed before a move has been seen, and nothing while the setpoint does not act on
// the process (tuner.ts `savedPowerW`).

import { median, medianAbsoluteDeviation } from 'simple-statistics'

/** Bound on the move samples kept per equipment; when full, the smallest move goes first. */
export const MAX_SLOPE_SAMPLES = 64

export interface SlopeSample {
  from: number
  to: number
  /** Power after minus power before (W). */
  dP: number
}

export interface PowerCurve {
  /** P(s) = const + a s + b s³. */
  a: number
  b: number
}

function fit(samples: readonly SlopeSample[]): PowerCurve | undefined {
  let xx = 0
  let xy = 0
  let yy = 0
  let xr = 0
  let yr = 0
  for (const s of samples) {
    const x = s.to - s.from
    const y = s.to ** 3 - s.from ** 3
    xx += x * x
    xy += x * y
    yy += y * y
    xr += x * s.dP
    yr += y * s.dP
  }
  if (xx === 0) return undefined
  const det = xx * yy - xy * xy
  if (det > 1e-9 * xx * yy) {
    const a = (xr * yy - yr * xy) / det
    const b = (yr * xx - xr * xy) / det
    if (a >= 0 && b >= 0) return { a, b }
  }
  const a = xr / xx
  const b = yy > 0 ? yr / yy : 0
  // One term only: the one that explains more.
  const residualA = samples.reduce((acc, s) => acc + (s.dP - a * (s.to - s.from)) ** 2, 0)
  const residualB = samples.reduce((acc, s) => acc + (s.dP - b * (s.to ** 3 - s.from ** 3)) ** 2, 0)
  if (b > 0 && (residualB < residualA || a <= 0)) return { a: 0, b }
  return a > 0 ? { a, b: 0 } : { a: 0, b: 0 }
}

export function fitPowerCurve(samples: readonly SlopeSample[]): PowerCurve | undefined {
  const first = fit(samples)
  if (first === undefined || samples.length < 4) return first
  const residuals = samples.map((s) => s.dP - powerDifferenceW(first, s.from, s.to))
  const mid = median(residuals)
  const mad = medianAbsoluteDeviation(residuals)
  if (mad === 0) return first
  const kept = samples.filter((_, i) => Math.abs(residuals[i]! - mid) <= 3 * 1.4826 * mad)
  return fit(kept) ?? first
}

/** Power (W) drawn more at `to` than at `from` (positive when to > from). */
export function powerDifferenceW(curve: PowerCurve, from: number, to: number): number {
  return curve.a * (to - from) + curve.b * (to ** 3 - from ** 3)
}

/** Adds a sample within the bound: when full, the sample of the smallest move is dropped. */
export function addSample(samples: SlopeSample[], sample: SlopeSample): void {
  samples.push(sample)
  if (samples.length <= MAX_SLOPE_SAMPLES) return
  let smallest = 0
  for (let i = 1; i < samples.length; i++) {
    if (Math.abs(samples[i]!.to - samples[i]!.from) < Math.abs(samples[smallest]!.to - samples[smallest]!.from))
      smallest = i
  }
  samples.splice(smallest, 1)
}
