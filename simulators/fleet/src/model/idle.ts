// Idle episodes exactly as CONTRACT.md §7 defines them, applied to one equipment's readings in time
// order. The simulation's ground truth runs it on the true (noise-included, rounded) values at the
// instants the devices sample them; tests run the same rules on what the devices published, so an
// episode in the truth is one the published data shows, and the other way round.
//
// Rules (§7): the equipment is `off` below offBelowW.
// - With an output counter: it is idle once it has been powered (power ≥ offBelowW) for at least
//   afterS without its output increasing. The episode starts at the last reading with an increase,
//   or at power-on (the first powered reading after an unpowered one, or the first reading at all);
//   it is raised at the first reading that still shows no increase with time ≥ start + afterS, and
//   ends at the reading with the next increase or the first unpowered reading.
// - Without one: idle while offBelowW ≤ power < runAboveW; the episode starts at the first such
//   reading, is raised at the first reading still in the band with time ≥ start + afterS, and ends
//   at the first reading outside the band.
// Only raised episodes count (a shorter stop is no episode). wastedWh is the energy drawn from the
// start reading to the end reading (to the latest reading while open).

export interface IdleEpisode {
  scope: string
  startS: number
  endS: number | null
  wastedWh: number
}

export interface IdleRule {
  offBelowW: number
  runAboveW: number
  afterS: number
  /** True: the output-counter rule; false: the power-band rule. */
  output: boolean
}

export class IdleDetector {
  private readonly offBelowW: number
  private readonly runAboveW: number
  private readonly afterMs: number
  private readonly useOutput: boolean
  /** Closed episodes as flat [startMs, endMs, wastedWh, …]. */
  private readonly closedFlat: number[] = []
  private seen = false
  private powered = false
  private anchorMs = 0
  private anchorWh = 0
  private active = false
  private raised = false
  private lastMs = 0
  private lastWh = 0

  constructor(rule: IdleRule) {
    this.offBelowW = rule.offBelowW
    this.runAboveW = rule.runAboveW
    this.afterMs = rule.afterS * 1000
    this.useOutput = rule.output
  }

  /**
   * One reading, in time order. `outputIncreased`: the output counter rose since the previous reading
   * (after a reset, when the new value is above 0). `energyWh`: any cumulative energy of the equipment.
   */
  push(tMs: number, powerW: number, outputIncreased: boolean, energyWh: number): void {
    this.lastMs = tMs
    this.lastWh = energyWh
    if (this.useOutput) {
      if (powerW < this.offBelowW) {
        this.close(tMs, energyWh)
        this.powered = false
        this.seen = true
        return
      }
      if (!this.powered || !this.seen) {
        this.powered = true
        this.seen = true
        this.anchorMs = tMs
        this.anchorWh = energyWh
        return
      }
      if (outputIncreased) {
        this.close(tMs, energyWh)
        this.anchorMs = tMs
        this.anchorWh = energyWh
        return
      }
      if (!this.raised && tMs - this.anchorMs >= this.afterMs) this.raised = true
      return
    }
    this.seen = true
    if (powerW >= this.offBelowW && powerW < this.runAboveW) {
      if (!this.active) {
        this.active = true
        this.anchorMs = tMs
        this.anchorWh = energyWh
      } else if (!this.raised && tMs - this.anchorMs >= this.afterMs) this.raised = true
      return
    }
    this.close(tMs, energyWh)
    this.active = false
  }

  private close(tMs: number, energyWh: number): void {
    if (this.raised) this.closedFlat.push(this.anchorMs, tMs, energyWh - this.anchorWh)
    this.raised = false
  }

  /** Raised episodes so far, the open one last (endS null). */
  episodes(scope: string): IdleEpisode[] {
    const out: IdleEpisode[] = []
    const flat = this.closedFlat
    for (let i = 0; i < flat.length; i += 3) {
      out.push({ scope, startS: flat[i]! / 1000, endS: flat[i + 1]! / 1000, wastedWh: flat[i + 2]! })
    }
    if (this.raised)
      out.push({ scope, startS: this.anchorMs / 1000, endS: null, wastedWh: this.lastWh - this.anchorWh })
    return out
  }

  /** Time of the latest reading (ms). */
  get latestMs(): number {
    return this.lastMs
  }
}
