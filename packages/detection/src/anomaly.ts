// Over-consumption (issue 5): an equipment drawing markedly more than its own baseline for the same
// state. The baseline is the distribution of its running power (a bounded log histogram, 1.5 %
// bins). A running reading is excessive when above
//   median + anomalyK × 1.4826 × MAD   and   median × (1 + anomalyMinExcess)
// (MAD scaled to a standard deviation; the second bound keeps a very steady machine from being
// flagged for a few percent). The alert is raised at the first excessive reading at least
// anomalySustainS after the first one of an unbroken excessive stretch (since = that first one),
// `critical` above median × (1 + anomalyCriticalExcess), else `warning`; it clears at the first
// reading back below the exit level (three quarters of the way from the median to the threshold:
// hysteresis, so noise at the threshold does not flap) or when the equipment leaves `running`.
// Excessive readings never enter the baseline, so an anomaly cannot teach itself to be normal;
// the baseline is refreshed every anomalyRefreshS of event time, not per reading.

import { type HistogramJson, LogHistogram } from './histogram.ts'
import type { DetectionOptions } from './options.ts'

const PER_DECADE = 150
const LO_SHARE = 1e-3
const DECADES = 4
const MAD_TO_SIGMA = 1.4826
const REFRESH_S = 300

export interface Baseline {
  medianW: number
  madW: number
  thresholdW: number
  exitW: number
}

export type AnomalyTransition =
  | { type: 'raise'; sinceS: number; atS: number; powerW: number; baseline: Baseline; critical: boolean }
  | { type: 'clear'; sinceS: number; atS: number }
  | undefined

export interface AnomalyJson {
  histogram: HistogramJson
  samples: number
  firstS: number | null
  refreshS: number | null
  baseline: Baseline | null
  candidateS: number | null
  raised: boolean
}

export class AnomalyDetector {
  private readonly histogram: LogHistogram
  private samples = 0
  private firstS: number | null = null
  private refreshS: number | null = null
  baseline: Baseline | null = null
  private candidateS: number | null = null
  private raised = false

  constructor(
    ratedW: number,
    private readonly options: Readonly<DetectionOptions>,
  ) {
    this.histogram = new LogHistogram(Math.max(ratedW, 1) * LO_SHARE, DECADES, PER_DECADE, options.histogramCap)
  }

  get isRaised(): boolean {
    return this.raised
  }

  /** One step: `running` says whether the equipment is in its running state at tS. */
  step(tS: number, powerW: number, running: boolean): AnomalyTransition {
    const b = this.baseline
    const excessive = running && b !== null && powerW > (this.raised ? b.exitW : b.thresholdW)
    if (!excessive) {
      if (running) this.learn(tS, powerW)
      const sinceS = this.candidateS
      this.candidateS = null
      if (!this.raised) return undefined
      this.raised = false
      return { type: 'clear', sinceS: sinceS!, atS: tS }
    }
    if (this.candidateS === null) this.candidateS = tS
    if (this.raised || tS - this.candidateS < this.options.anomalySustainS) return undefined
    // While raised, candidateS stays the stretch's start (any non-excessive reading ends both).
    this.raised = true
    const critical = powerW > b!.medianW * (1 + this.options.anomalyCriticalExcess)
    return { type: 'raise', sinceS: this.candidateS, atS: tS, powerW, baseline: b!, critical }
  }

  private learn(tS: number, powerW: number): void {
    this.histogram.add(powerW)
    this.samples++
    if (this.firstS === null) this.firstS = tS
    const o = this.options
    if (this.samples < o.anomalyMinSamples || tS - this.firstS < o.anomalyMinSpanS) return
    if (this.refreshS !== null && tS < this.refreshS) return
    this.refreshS = tS + REFRESH_S
    const medianW = this.histogram.quantileW(0.5)
    const madW = this.histogram.madW(medianW)
    const thresholdW = Math.max(medianW + o.anomalyK * MAD_TO_SIGMA * madW, medianW * (1 + o.anomalyMinExcess))
    this.baseline = { medianW, madW, thresholdW, exitW: medianW + 0.75 * (thresholdW - medianW) }
  }

  toJSON(): AnomalyJson {
    return {
      histogram: this.histogram.toJSON(),
      samples: this.samples,
      firstS: this.firstS,
      refreshS: this.refreshS,
      baseline: this.baseline,
      candidateS: this.candidateS,
      raised: this.raised,
    }
  }

  restore(json: AnomalyJson): void {
    this.histogram.restore(json.histogram)
    this.samples = json.samples
    this.firstS = json.firstS
    this.refreshS = json.refreshS
    this.baseline = json.baseline
    this.candidateS = json.candidateS
    this.raised = json.raised
  }
}
