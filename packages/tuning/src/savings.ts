// Savings: the energy the equipment would have drawn at its starting setpoint under the same
// production, minus what it drew. The tuner has no model of the machine, so the power it would have
// drawn is estimated from what it saw: every move is a small experiment (the mean power of the
// steady window after it minus the one before it, over the setpoint change) giving the slope
// dP/dsetpoint at the middle of the two setpoints. A line through those slopes (robust: samples
// more than 3 MADs from the median are dropped, production changes during a window make a few
// wild ones) is dP/dsetpoint as a function of the setpoint; its integral from the current
// setpoint to the starting one is the power saved now. Nothing is claimed before a slope is seen,
// and nothing while the setpoint does not act on the process (see tuner.ts `active`).

import { linearRegression, median, medianAbsoluteDeviation } from 'simple-statistics'

/** Bound on the slope samples kept per equipment (the newest win). */
export const MAX_SLOPE_SAMPLES = 48

export interface SlopeSample {
  /** Middle of the two setpoints. */
  at: number
  /** dP/dsetpoint, W per setpoint unit. */
  slope: number
}

export interface PowerCurve {
  /** dP/dsetpoint = a + b × setpoint. */
  a: number
  b: number
}

export function fitPowerCurve(samples: readonly SlopeSample[]): PowerCurve | undefined {
  if (samples.length === 0) return undefined
  const slopes = samples.map((s) => s.slope)
  const mid = median(slopes)
  const mad = slopes.length >= 3 ? medianAbsoluteDeviation(slopes) : 0
  const kept = mad > 0 ? samples.filter((s) => Math.abs(s.slope - mid) <= 3 * 1.4826 * mad) : samples
  const distinct = new Set(kept.map((s) => Math.round(s.at * 100))).size
  if (kept.length < 4 || distinct < 3) return { a: median(kept.map((s) => s.slope)), b: 0 }
  const { m, b } = linearRegression(kept.map((s) => [s.at, s.slope]))
  return { a: b, b: m }
}

/** Power (W) the equipment would draw more at `from` than at `to` (positive when from > to). */
export function powerDifferenceW(curve: PowerCurve, to: number, from: number): number {
  // ∫_to^from (a + b x) dx, with the slope never taken below 0 (fan power does not fall with speed).
  const steps = 8
  const h = (from - to) / steps
  let sum = 0
  for (let i = 0; i < steps; i++) {
    const x = to + (i + 0.5) * h
    sum += Math.max(0, curve.a + curve.b * x) * h
  }
  return sum
}
