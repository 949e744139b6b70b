// Rooftop PV: the sun's elevation at the site and a sky with clouds.
//
// Location: the plant model has only a time zone, so a site sits at a representative place for its
// zone (a small table of zones where cell plants are; elsewhere latitude 40° and the longitude of
// the zone's standard meridian). Elevation: the usual declination / equation-of-time / hour-angle
// formulas (accurate to a fraction of a degree, plenty for energy). Clear-sky output of a
// fixed-tilt array ∝ sin(elevation)^1.2, which puts sunrise and sunset ramps about right and gives
// exactly zero while the sun is below the horizon.
//
// Sky: each local day draws a weather type (clear 40 %, broken clouds 35 %, overcast 25 %). Cloud
// cover follows an Ornstein-Uhlenbeck process around the day's mean (time constant 20 min); on
// broken-cloud days single clouds pass, shading the array to 30–50 % for 30–180 s. Output =
// peak × clearSky × (1 − 0.75·cover²) × shade.

import { exponential, type Rng, tri, uniform } from './rng.ts'

const DEG = Math.PI / 180

/** Representative places (latitude, longitude) of zones with cell plants. */
const PLACES: Record<string, [number, number]> = {
  'Asia/Shanghai': [28.8, 104.6], // Yibin, Sichuan
  'Asia/Chongqing': [29.6, 106.5],
  'Asia/Hong_Kong': [22.3, 114.2],
  'Asia/Seoul': [36.6, 127.5],
  'Asia/Tokyo': [34.7, 135.5],
  'Asia/Kolkata': [12.9, 77.6],
  'Asia/Jakarta': [-6.4, 107.4],
  'Europe/Berlin': [52.3, 13.6],
  'Europe/Budapest': [47.5, 21.6],
  'Europe/Stockholm': [64.8, 21.0], // Skellefteå
  'Europe/Warsaw': [51.0, 16.9],
  'Europe/Paris': [50.4, 2.9],
  'Europe/Madrid': [40.4, -3.7],
  'Europe/London': [52.4, -1.5],
  'Europe/Prague': [50.1, 14.4],
  'America/New_York': [35.8, -80.0],
  'America/Chicago': [36.5, -86.9],
  'America/Denver': [39.7, -105.0],
  'America/Los_Angeles': [39.5, -119.4], // Nevada
  'America/Phoenix': [33.4, -112.1],
  'America/Detroit': [42.3, -83.0],
  'America/Mexico_City': [25.7, -100.3],
  'America/Sao_Paulo': [-23.5, -46.6],
  'Australia/Perth': [-32.0, 115.9],
  UTC: [40, 0],
}

export function siteLocation(timezone: string, standardOffsetMs: number): { lat: number; lon: number } {
  const place = PLACES[timezone]
  if (place) return { lat: place[0], lon: place[1] }
  return { lat: 40, lon: Math.max(-180, Math.min(180, (standardOffsetMs / 3_600_000) * 15)) }
}

/** sin(solar elevation) at utcMs for a place; negative at night. */
export function sinElevation(utcMs: number, latDeg: number, lonDeg: number): number {
  const days = utcMs / 86_400_000
  const dayOfYear = days - Math.floor((days + 0.5) / 365.25) * 365.25 // ≈ day in the tropical year
  const gamma = (2 * Math.PI * dayOfYear) / 365.25
  const declination =
    0.006918 -
    0.399912 * Math.cos(gamma) +
    0.070257 * Math.sin(gamma) -
    0.006758 * Math.cos(2 * gamma) +
    0.000907 * Math.sin(2 * gamma)
  const eqTimeMin =
    229.18 *
    (0.000075 +
      0.001868 * Math.cos(gamma) -
      0.032077 * Math.sin(gamma) -
      0.014615 * Math.cos(2 * gamma) -
      0.040849 * Math.sin(2 * gamma))
  const utcMinutes = (((utcMs % 86_400_000) + 86_400_000) % 86_400_000) / 60_000
  const solarMinutes = utcMinutes + eqTimeMin + 4 * lonDeg
  const hourAngle = (solarMinutes / 4 - 180) * DEG
  const lat = latDeg * DEG
  return Math.sin(lat) * Math.sin(declination) + Math.cos(lat) * Math.cos(declination) * Math.cos(hourAngle)
}

/** Clear-sky output of the array as a share of its peak. */
export function clearSkyShare(sinElev: number): number {
  return sinElev <= 0 ? 0 : sinElev ** 1.2
}

const COVER_TAU_S = 1200
const WEATHER_MEAN_COVER = [0.08, 0.45, 0.9]
const WEATHER_SIGMA = [0.05, 0.18, 0.06]

/** The sky over one site: stepped once per report interval, whichever of its meters is simulated. */
export class Sky {
  private readonly rng: Rng
  private day = Number.NaN
  private weather = 0
  cover = 0
  /** Multiplier of a passing cloud's shadow, 1 when none. */
  shade = 1
  private shadeUntilMs = 0
  private nextCloudMs = 0
  /** Last tick this sky was stepped to. */
  tick = -1

  constructor(rng: Rng) {
    this.rng = rng
  }

  step(tick: number, utcMs: number, localDayIndex: number, dtS: number): void {
    this.tick = tick
    const rng = this.rng
    if (localDayIndex !== this.day) {
      const first = Number.isNaN(this.day)
      this.day = localDayIndex
      const u = rng()
      this.weather = u < 0.4 ? 0 : u < 0.75 ? 1 : 2
      if (first) this.cover = WEATHER_MEAN_COVER[this.weather]!
      this.nextCloudMs = utcMs + exponential(rng, 600) * 1000
    }
    const mean = WEATHER_MEAN_COVER[this.weather]!
    const sigma = WEATHER_SIGMA[this.weather]!
    const a = Math.min(1, dtS / COVER_TAU_S)
    this.cover += (mean - this.cover) * a + sigma * Math.sqrt(2 * a) * tri(rng) * 2.45
    if (this.cover < 0) this.cover = 0
    else if (this.cover > 1) this.cover = 1
    if (this.weather === 1 && utcMs >= this.nextCloudMs) {
      this.shadeUntilMs = utcMs + uniform(rng, 30, 180) * 1000
      this.shade = uniform(rng, 0.3, 0.5)
      this.nextCloudMs = this.shadeUntilMs + exponential(rng, 420) * 1000
    }
    if (utcMs >= this.shadeUntilMs) this.shade = 1
  }

  /** Share of clear-sky output that reaches the array now. */
  transmission(): number {
    return (1 - 0.75 * this.cover * this.cover) * this.shade
  }
}
