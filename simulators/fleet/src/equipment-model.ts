import type { Equipment } from '@plantwatt/contract'

// Equipment physics for the demo fleet: a small state machine per equipment, pure, driven by a
// random source and the simulated time passed in. The simulator issue (#4) makes this rich.

export type SimState = 'off' | 'idle' | 'running'

/** Mean time in each state, seconds: short enough that a newcomer sees the plant change. */
const MEAN_DWELL_S: Record<SimState, number> = { running: 240, idle: 90, off: 60 }
const NEXT_STATE: Record<SimState, SimState[]> = {
  running: ['idle', 'idle', 'off'],
  idle: ['running', 'running', 'off'],
  off: ['running'],
}

export interface EquipmentSim {
  spec: Equipment
  state: SimState
  /** Simulated time (s) at which the state changes next. */
  untilS: number
  powerW: number
  /** Units produced, advancing only while running. */
  output: number
}

function dwell(state: SimState, random: () => number): number {
  // Exponential dwell times, as for independent stoppages.
  return -Math.log(1 - random()) * MEAN_DWELL_S[state]
}

/** Power levels that fall clearly inside the model's idle bands, so detection has a truth to find. */
export function levelPowerW(spec: Equipment, state: SimState): number {
  const rated = spec.ratedPowerW
  const idle = spec.idle
  if (state === 'off') return idle ? Math.min(idle.offBelowW * 0.5, rated * 0.005) : rated * 0.005
  if (state === 'idle') return idle ? (idle.offBelowW + idle.runAboveW) / 2 : rated * 0.15
  return idle ? Math.max(idle.runAboveW * 1.3, rated * 0.7) : rated * 0.7
}

export function createEquipmentSim(spec: Equipment, nowS: number, random: () => number): EquipmentSim {
  const state: SimState = random() < 0.8 ? 'running' : 'idle'
  return { spec, state, untilS: nowS + dwell(state, random), powerW: levelPowerW(spec, state), output: 0 }
}

/** Advances one equipment to `nowS` after `elapsedS` seconds: state changes, power with noise, output. */
export function stepEquipment(sim: EquipmentSim, nowS: number, elapsedS: number, random: () => number): void {
  while (nowS >= sim.untilS) {
    const choices = NEXT_STATE[sim.state]
    sim.state = choices[Math.floor(random() * choices.length)] ?? 'running'
    sim.untilS += dwell(sim.state, random)
  }
  const noise = 1 + (random() - 0.5) * 0.04
  sim.powerW = levelPowerW(sim.spec, sim.state) * noise
  if (sim.state === 'running') sim.output += elapsedS * (0.5 + random())
}

/** Rooftop PV at local hour `hour` (fractional): a sine between 06:00 and 18:00, scaled to `peakW`. */
export function pvPowerW(hour: number, peakW: number, cloudiness: number): number {
  if (hour <= 6 || hour >= 18) return 0
  return peakW * Math.sin(((hour - 6) / 12) * Math.PI) * (1 - cloudiness)
}
