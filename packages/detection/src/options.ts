// Tuning knobs of detection, each with the reason for its default. Validated once and frozen
// (STYLE.md: options validated at start-up), so the per-reading path reads plain numbers.

export interface DetectionOptions {
  /**
   * Hysteresis of the idle thresholds, as a share of runAboveW (CONTRACT.md §7 allows up to 0.05).
   * Only the exit side is widened: entering the band or powering on uses the exact thresholds, so
   * a raise is never delayed; leaving needs the power past the threshold by this margin, so noise
   * around a threshold does not end and restart episodes (no flapping).
   */
  hysteresisShare: number
  /** The off-side widening is also capped at this share of offBelowW, so it never reaches 0 W. */
  hysteresisOffShare: number
  /** afterS for learned thresholds: 5 min is the usual plant-model value and the simulator's. */
  learnedAfterS: number
  /** Learning needs at least this many equipment power readings... */
  learnMinReadings: number
  /** ...spanning at least this long (s), so one shift phase is not mistaken for the whole story. */
  learnMinSpanS: number
  /** Thresholds are re-learned this often (equipment event time, s): new levels appear over a day. */
  learnEveryS: number
  /**
   * A learned power level whose median is below this share of ratedPowerW is `off` (controls only);
   * above it, the lowest level is idle. Machines idle at 5–25 % of rated and sit off below ~1 %.
   */
  offMaxShareOfRated: number
  /** Two levels are distinct when their medians differ by at least this factor (a 2× step). */
  levelMinRatio: number
  /** A level holding less than this share of the history is a transient, not a level. */
  levelMinShare: number
  /** Histogram halving threshold: counts are halved past this total, so old history fades. */
  histogramCap: number
  /** Over-consumption: running power above median + k × MAD (MAD scaled to σ by 1.4826)... */
  anomalyK: number
  /** ...and at least this share above the median, so a very steady machine is not flagged for 2 %. */
  anomalyMinExcess: number
  /** ...for this long (s) before the alert is raised: a short surge (start-up, burst) is normal. */
  anomalySustainS: number
  /** Above median × (1 + this) the anomaly is critical. */
  anomalyCriticalExcess: number
  /** Running readings the baseline needs before it judges anything. */
  anomalyMinSamples: number
  /** ...spanning at least this long (s). */
  anomalyMinSpanS: number
  /**
   * A raise of the same (scope, kind) within this long (s, event time) after the previous clear
   * is marked `data.flapping` with `data.previousId`; it is never dropped (CONTRACT.md §7).
   */
  flapWindowS: number
  /** Events held per channel (CONTRACT.md §5 asks for at least 10,000). */
  eventLogCapacity: number
}

export const DEFAULT_OPTIONS: Readonly<DetectionOptions> = Object.freeze({
  hysteresisShare: 0.05,
  hysteresisOffShare: 0.25,
  learnedAfterS: 300,
  // 60, not more: with the span rule below, an equipment reporting once a minute learns after its
  // first hour. 300 made single-device equipment at 60 s intervals wait 5 h, blind to idle meanwhile
  // (recall 0.956 → 0.988 on a 2,000-device day, precision unchanged; docs/benchmarks.md).
  learnMinReadings: 60,
  learnMinSpanS: 3600,
  learnEveryS: 300,
  offMaxShareOfRated: 0.05,
  levelMinRatio: 2,
  levelMinShare: 0.01,
  histogramCap: 1_000_000,
  anomalyK: 6,
  anomalyMinExcess: 0.2,
  anomalySustainS: 600,
  anomalyCriticalExcess: 0.5,
  anomalyMinSamples: 600,
  anomalyMinSpanS: 3600,
  flapWindowS: 600,
  eventLogCapacity: 10_000,
})

/** Defaults applied, every value checked; throws RangeError naming the bad key. */
export function resolveOptions(options: Partial<DetectionOptions> | undefined): Readonly<DetectionOptions> {
  const out: DetectionOptions = { ...DEFAULT_OPTIONS, ...options }
  for (const [key, value] of Object.entries(out)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`detection option ${key} must be a finite number ≥ 0, got ${String(value)}`)
    }
  }
  if (out.hysteresisShare > 0.05)
    throw new RangeError('detection option hysteresisShare must be ≤ 0.05 (CONTRACT.md §7)')
  if (out.hysteresisOffShare >= 1) throw new RangeError('detection option hysteresisOffShare must be < 1')
  if (out.levelMinRatio <= 1) throw new RangeError('detection option levelMinRatio must be > 1')
  if (out.eventLogCapacity < 1 || !Number.isInteger(out.eventLogCapacity)) {
    throw new RangeError('detection option eventLogCapacity must be a positive integer')
  }
  return Object.freeze(out)
}
