// A site and its meters. Site consumption is the sum of its equipment's power; the grid meter
// reads consumption − PV (negative when exporting) and counts imported energy only (the import
// register of a bidirectional meter, CONTRACT.md §2: a counter decrease means a reset). Both follow
// from integrating piecewise-constant power between events in time order (every line and PV meter
// sample changes the site's power at its own instant), so the grid meter's counter is exact for the
// power the site actually drew. Only a site whose grid meter is emitted keeps these sums (they need
// every line of the site simulated).
//
// PV: 10 % of the site's total rated power as peak, split evenly over its PV meters, following
// sun.ts. A PV meter reports `power` (generated, ≥ 0, exactly 0 at night) and `energy` (generated).

import { localDay, SiteClock } from './calendar.ts'
import type { DeviceSim } from './device.ts'
import type { Rng } from './rng.ts'
import type { MinuteSeries } from './series.ts'
import { clearSkyShare, Sky, sinElevation, siteLocation } from './sun.ts'

export class SiteSim {
  readonly id: string
  readonly clock: SiteClock
  readonly lat: number
  readonly lon: number
  readonly sky: Sky
  readonly pvPeakW: number
  /** The grid meter is emitted: keep consumption, PV and import sums. */
  trackGrid = false
  consumptionW = 0
  pvW = 0
  importWh = 0
  importMinutes: MinuteSeries | undefined
  private integrating = false
  private lastMs = 0

  constructor(id: string, timezone: string, startMs: number, skyRng: Rng, pvPeakW: number) {
    this.id = id
    this.clock = new SiteClock(timezone)
    const offset = this.clock.localMs(startMs) - startMs
    const { lat, lon } = siteLocation(timezone, offset)
    this.lat = lat
    this.lon = lon
    this.sky = new Sky(skyRng)
    this.pvPeakW = pvPeakW
  }

  /** Brings the import register up to sMs with the power held since the last event. */
  integrate(sMs: number): void {
    if (!this.integrating) return
    const dt = sMs - this.lastMs
    if (dt <= 0) return
    const net = this.consumptionW - this.pvW
    if (net > 0) {
      this.importWh += (net * dt) / 3_600_000
      this.importMinutes?.add(this.lastMs, sMs, net)
    }
    this.lastMs = sMs
  }

  startIntegrating(sMs: number): void {
    if (this.integrating) return
    this.integrating = true
    this.lastMs = sMs
  }

  addConsumption(sMs: number, deltaW: number): void {
    this.integrate(sMs)
    this.consumptionW += deltaW
  }
}

/** A PV or grid meter: a unit of its own, sampled at its own phase. */
export class MeterSim {
  readonly deviceId: string
  readonly site: SiteSim
  readonly kind: 'pv' | 'grid'
  readonly share: number
  phaseMs: number
  dtMs: number
  readonly maxW: number
  powerW = 0
  energyWh = 0
  energyStartWh = 0
  readonly output = 0
  readonly pvReported = 0
  readonly spReported = 0
  started = false
  minutes: MinuteSeries | undefined
  device: DeviceSim | undefined
  /** The previous sample's time: energy is integrated over the time actually elapsed since. */
  private lastSampleMs = 0

  constructor(
    deviceId: string,
    site: SiteSim,
    kind: 'pv' | 'grid',
    share: number,
    phaseMs: number,
    dtMs: number,
    maxW: number,
  ) {
    this.deviceId = deviceId
    this.site = site
    this.kind = kind
    this.share = share
    this.phaseMs = phaseMs
    this.dtMs = dtMs
    this.maxW = maxW
  }

  step(sMs: number, tick: number, tickMs: number): void {
    const site = this.site
    if (this.kind === 'pv') {
      if (this.started) {
        this.energyWh += (this.powerW * (sMs - this.lastSampleMs)) / 3_600_000
        this.minutes?.add(this.lastSampleMs, sMs, this.powerW)
      }
      const sky = site.sky
      if (sky.tick !== tick) sky.step(tick, tickMs, localDay(site.clock.localMs(tickMs)), this.dtMs / 1000)
      const clear = clearSkyShare(sinElevation(sMs, site.lat, site.lon))
      const p = clear === 0 ? 0 : Math.round(site.pvPeakW * this.share * clear * sky.transmission() * 10) / 10
      if (site.trackGrid) {
        site.integrate(sMs)
        site.pvW += p - this.powerW
      }
      this.powerW = p
    } else {
      // The first tick only builds up the site's consumption; the grid meter reads from the second.
      if (tick === 0) return
      site.startIntegrating(sMs)
      site.integrate(sMs)
      this.powerW = Math.round((site.consumptionW - site.pvW) * this.share * 10) / 10
      this.energyWh = site.importWh * this.share
    }
    if (!this.started) {
      this.started = true
      this.energyStartWh = this.energyWh
    }
    this.lastSampleMs = sMs
    this.device?.sample(sMs)
  }
}
