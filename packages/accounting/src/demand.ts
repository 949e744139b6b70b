// Demand of CONTRACT.md §5 `live`: the average power of the current 15-minute interval so far,
// its projection to the interval's end, and (kept by the engine) the month's highest completed
// interval, the figures behind capacity charges.

const QUARTER_S = 900

/** Average power (kW) of the interval so far: its energy over the time elapsed since its start. */
export function intervalKW(energySoFarWh: number, elapsedS: number): number {
  return elapsedS > 0 ? energySoFarWh / (elapsedS / 3600) / 1000 : 0
}

/**
 * Projection (kW) to the interval's end: the energy so far plus the current power held for the
 * rest of the interval, averaged over the whole 15 minutes. Energy of readings still in flight
 * (NB-IoT batches) is missing from "so far", which the current power partly makes up for.
 */
export function forecastKW(energySoFarWh: number, currentW: number, intervalStartS: number, clockS: number): number {
  const remainingS = Math.max(0, intervalStartS + QUARTER_S - clockS)
  return (energySoFarWh + (currentW * remainingS) / 3600) / (QUARTER_S / 3600) / 1000
}
