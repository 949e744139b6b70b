// Simulated time of a run (issue 4): `--speed X` runs simulated time X times faster than the
// wall clock; `--speed max` as fast as the broker accepts, bounded by a horizon that the
// coordinator moves so that the worker processes stay in step. Pure: wall time is passed in.

export type Speed = number | 'max'

/** `max` or a positive number (`1`, `60`, `0.5`). */
export function parseSpeed(text: string): Speed {
  if (text === 'max') return 'max'
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > 1e6) {
    throw new RangeError(`speed must be "max" or a number above 0 up to 1000000, got ${JSON.stringify(text)}`)
  }
  return value
}

const DURATION_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }

/** Seconds from `90`, `90s`, `10m`, `24h`, `7d` (decimals allowed: `1.5h`). */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(text.trim())
  const seconds = match ? Number(match[1]) * DURATION_UNITS[match[2]!]! : Number.NaN
  if (!(seconds > 0) || seconds > 366 * 86_400) {
    throw new RangeError(`duration must be like 90, 90s, 10m, 24h or 7d (up to a year), got ${JSON.stringify(text)}`)
  }
  return seconds
}

/**
 * Where simulated time starts so that no reading lies in the future: at speed X a run of D
 * simulated seconds takes D/X wall seconds, so starting at now − D·(1 − 1/X) it ends exactly
 * at the wall clock. At `max` the wall time is unknown (it can only be shorter than D), so the
 * run starts D in the past. At X ≤ 1 simulated time never overtakes the wall clock: start now.
 */
export function simulatedStartS(nowS: number, durationS: number, speed: Speed): number {
  if (speed === 'max') return nowS - durationS
  if (speed <= 1) return nowS
  return nowS - durationS * (1 - 1 / speed)
}

/** Simulated seconds a run may have reached at wall time `wallMs`, never beyond `horizonS`. */
export function paceS(startS: number, speed: Speed, wallStartMs: number, wallMs: number, horizonS: number): number {
  if (speed === 'max') return horizonS
  return Math.min(horizonS, startS + (Math.max(0, wallMs - wallStartMs) / 1000) * speed)
}

/** Wall-clock ms at which simulated time `tS` is due (fixed speed). */
export function dueWallMs(startS: number, speed: number, wallStartMs: number, tS: number): number {
  return wallStartMs + ((tS - startS) / speed) * 1000
}
