// Idle thresholds learned from an equipment's own power history where the plant model gives none
// (CONTRACT.md §1 `idle` optional, §7). The history is a bounded log histogram; learning samples it
// at fixed quantiles and clusters the sample (optimal 1-D k-means, kmeans.ts), then:
//   1. drops clusters holding < levelMinShare of the history (transitions between levels),
//   2. merges neighbours whose medians differ by less than levelMinRatio (one level's noise and
//      speed changes, not two levels),
//   3. labels every level whose median is below offMaxShareOfRated × ratedPowerW `off` (controls
//      only, or a powered-down state such as an oven's heater fault); the lowest level above that
//      is idle, the next one up running.
// A threshold sits at the geometric middle of the gap between two neighbouring levels. offBelowW
// needs an off level, or, never having seen one, is put at half the lowest powered level (at most
// offMaxShareOfRated × rated): the output rule needs nothing else. A history of off levels only gives
// a provisional offBelowW between them and offMaxShareOfRated × rated, so the output rule sees the
// first power-on. runAboveW needs two powered
// levels; the power-band rule waits for it. Rule for learning at all: ≥ learnMinReadings readings
// spanning ≥ learnMinSpanS; re-learned every learnEveryS of event time as new levels show up.

import { type HistogramJson, LogHistogram } from './histogram.ts'
import { weightedKMeans1d } from './kmeans.ts'
import type { DetectionOptions } from './options.ts'

/** 256 quantiles: a 1 % level still gets 2–3 points. */
const SAMPLE = 256
const MAX_CLUSTERS = 4
/** 50 bins per decade: 4.7 % steps, finer than any gap between levels worth a threshold. */
const PER_DECADE = 50
const LO_SHARE = 1e-4
/** Up to 10 × rated (beyond that a reading is rejected out_of_range, CONTRACT.md §2). */
const DECADES = 5

export interface LearnedThresholds {
  offBelowW: number | null
  runAboveW: number | null
  /** Medians of the levels found (W), lowest first; those below offBelowW are `off` when offLevel. */
  levelsW: number[]
  offLevel: boolean
}

export interface LearnerJson {
  histogram: HistogramJson
  readings: number
  firstS: number | null
  nextLearnS: number | null
  learned: LearnedThresholds | null
}

interface Level {
  values: number[]
}

export class ThresholdLearner {
  private readonly histogram: LogHistogram
  private readings = 0
  private firstS: number | null = null
  private nextLearnS: number | null = null
  learned: LearnedThresholds | null = null

  constructor(
    private readonly ratedW: number,
    private readonly options: Readonly<DetectionOptions>,
  ) {
    this.histogram = new LogHistogram(Math.max(ratedW, 1) * LO_SHARE, DECADES, PER_DECADE, options.histogramCap)
  }

  /** One equipment power reading in time order; returns true when the thresholds were re-learned. */
  add(tS: number, powerW: number): boolean {
    this.histogram.add(powerW)
    this.readings++
    if (this.firstS === null) this.firstS = tS
    const o = this.options
    if (this.readings < o.learnMinReadings || tS - this.firstS < o.learnMinSpanS) return false
    if (this.nextLearnS !== null && tS < this.nextLearnS) return false
    this.nextLearnS = tS + o.learnEveryS
    // A history that no longer shows a powered level keeps the previous thresholds.
    const learned = this.learn()
    if (learned === null || learned.offBelowW === null) return false
    if (this.learned !== null && hasPoweredLevel(this.learned) && !hasPoweredLevel(learned)) return false
    this.learned = learned
    return true
  }

  private learn(): LearnedThresholds | null {
    const o = this.options
    const clusters = this.clusteredSample()
    let levels: Level[] = clusters.filter((c) => c.length / SAMPLE >= o.levelMinShare).map((c) => ({ values: c }))
    const minGap = Math.log10(o.levelMinRatio)
    for (let i = 1; i < levels.length; ) {
      if (median(levels[i]!.values) - median(levels[i - 1]!.values) < minGap) {
        levels[i - 1] = { values: [...levels[i - 1]!.values, ...levels[i]!.values] }
        levels = [...levels.slice(0, i), ...levels.slice(i + 1)]
      } else i++
    }
    if (levels.length === 0) return null
    const half = this.histogram.halfBinLog
    const gap = (lower: Level, upper: Level) =>
      10 ** ((Math.max(...lower.values) + half + Math.min(...upper.values) - half) / 2)
    // Every level below the off share is `off`, not only the lowest: a drying oven's heater fault
    // (fans at standby speed, heaters stopped, ≈ 2 % of rated) sits between controls-only and its
    // standby level, and taking it for idle read the real idle as running (docs/benchmarks.md).
    const offMaxW = o.offMaxShareOfRated * this.ratedW
    const offCount = levels.filter((l) => 10 ** median(l.values) < offMaxW).length
    const offLevel = offCount > 0
    const powered = levels.slice(offCount)
    let offBelowW: number | null = null
    if (offLevel && powered.length > 0) offBelowW = gap(levels[offCount - 1]!, powered[0]!)
    else if (offLevel) {
      // Off all along so far (a line without a night shift): the output rule needs only offBelowW,
      // and its episode starts at power-on (§7), so waiting for the powered level to fill 1 % of the
      // history missed the first idle episode after power-on. Provisionally halfway (geometric) from
      // the top of the off levels to offMaxShareOfRated × rated; re-learned once powered levels show.
      const topLog = Math.max(...levels[offCount - 1]!.values) + half
      if (topLog < Math.log10(offMaxW)) offBelowW = 10 ** ((topLog + Math.log10(offMaxW)) / 2)
    } else {
      const lowest = 10 ** (Math.min(...powered[0]!.values) - half)
      offBelowW = Math.min(lowest / 2, o.offMaxShareOfRated * this.ratedW)
    }
    const runAboveW = powered.length >= 2 ? gap(powered[0]!, powered[1]!) : null
    return {
      offBelowW: offBelowW === null ? null : round3(offBelowW),
      runAboveW: runAboveW === null ? null : round3(runAboveW),
      levelsW: levels.map((l) => round3(10 ** median(l.values))),
      offLevel,
    }
  }

  /**
   * The history's quantile sample in up to MAX_CLUSTERS clusters (optimal 1-D k-means), each
   * ascending, lowest first. Its points fall in a few dozen bins: clustered as bins with their
   * counts (weightedKMeans1d), the same clusters as ckmeans on the points, far cheaper.
   */
  private clusteredSample(): number[][] {
    const values: number[] = []
    const weights: number[] = []
    let lastBin = -1
    for (const bin of this.histogram.quantileBins(SAMPLE)) {
      if (bin === lastBin) weights[weights.length - 1]!++
      else {
        values.push(this.histogram.logCenter(bin))
        weights.push(1)
        lastBin = bin
      }
    }
    return weightedKMeans1d(values, weights, MAX_CLUSTERS).map(([from, to]) => {
      const cluster: number[] = []
      for (let i = from; i < to; i++) for (let n = 0; n < weights[i]!; n++) cluster.push(values[i]!)
      return cluster
    })
  }

  toJSON(): LearnerJson {
    return {
      histogram: this.histogram.toJSON(),
      readings: this.readings,
      firstS: this.firstS,
      nextLearnS: this.nextLearnS,
      learned: this.learned,
    }
  }

  restore(json: LearnerJson): void {
    this.histogram.restore(json.histogram)
    this.readings = json.readings
    this.firstS = json.firstS
    this.nextLearnS = json.nextLearnS
    this.learned = json.learned
  }
}

/** Whether the levels learned include one at or above offBelowW (not only off ones). */
function hasPoweredLevel(learned: LearnedThresholds): boolean {
  return learned.offBelowW !== null && learned.levelsW.some((w) => w >= learned.offBelowW!)
}

/** Three significant digits: thresholds shown to people, and identical after a JSON round trip. */
function round3(x: number): number {
  return Number(x.toPrecision(3))
}

function median(sorted: number[]): number {
  // ckmeans returns sorted clusters, and merged clusters are concatenations of sorted neighbours.
  const n = sorted.length
  return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
}
