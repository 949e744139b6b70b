// The ranges of CONTRACT.md §2 a reading must fall in to be accepted: an equipment's power against
// its rated power, a site meter's against the site's whole rated load.

/** CONTRACT.md §2: a power below −1 % or above 10 × the equipment's ratedPowerW is out of range. */
export function powerInRange(ratedPowerW: number, watts: number): boolean {
  return watts >= -0.01 * ratedPowerW && watts <= 10 * ratedPowerW
}

/** The floor of a site meter's range (issue 12 finding 13): a site without equipment still meters. */
const MIN_METER_LIMIT_W = 1_000_000

/**
 * Range of a site meter's power (issue 12 finding 13, docs/data-limits.md): a PV or grid meter
 * reads at most 10 × the site's whole rated load (the sum of its equipment's ratedPowerW, at least
 * 1 MW) either way — PV generated, grid imported or exported. A counter step implying more is out
 * of range too.
 */
export function meterLimitW(site: { equipment: readonly { spec: { ratedPowerW: number } }[] }): number {
  let rated = 0
  for (const equipment of site.equipment) rated += equipment.spec.ratedPowerW
  return Math.max(MIN_METER_LIMIT_W, 10 * rated)
}

export function meterPowerInRange(limitW: number, watts: number): boolean {
  return watts >= -limitW && watts <= limitW
}
