// The tuning benchmark (docs/benchmarks.md "Setpoint tuning, closed loop"): a generated plant with
// at least 200 tuned coating ovens, the simulator's physics joined in process to one Tuner each
// (test/sim-loop.ts), 3 simulated days from the rated setpoint, readings every 10 s. Prints the
// issue 15 figures on the simulator's truth as JSON.
//
//   pnpm bench:tuning [--devices 9000] [--hours 72] [--interval 10] [--psm 0.3 --batch-s 120]

import { parseArgs } from 'node:util'
import { runClosedLoop } from '../test/sim-loop.ts'

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '9000' },
    hours: { type: 'string', default: '72' },
    interval: { type: 'string', default: '10' },
    /** Share of devices in NB-IoT power-saving mode (they upload and take commands only when awake). */
    psm: { type: 'string', default: '0' },
    'batch-s': { type: 'string', default: '120' },
  },
})
const psm = Number(values.psm)
const r = runClosedLoop({
  devices: Number(values.devices),
  hours: Number(values.hours),
  reportIntervalS: Number(values.interval),
  faults: psm > 0 ? { psm: { share: psm, batchIntervalS: Number(values['batch-s']) } } : undefined,
})
const eqs = r.equipment
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!
const excess = eqs.map((e) => e.excess * 100).sort((a, b) => a - b)
const above = eqs.map((e) => (100 * e.aboveMaxS) / r.durationS).sort((a, b) => a - b)
const savedTrue = eqs.reduce((a, e) => a + e.savedTrueWh, 0)
const savedReported = eqs.reduce((a, e) => a + e.savedReportedWh, 0)
const ratios = eqs.map((e) => e.savedReportedWh / e.savedTrueWh).sort((a, b) => a - b)
const steadyTotal = eqs.reduce((a, e) => a + e.steadyS, 0)
const excessAll = eqs.reduce((a, e) => a + e.excess * e.steadyS, 0) / steadyTotal
console.log(
  JSON.stringify(
    {
      tunedEquipment: eqs.length,
      hours: Number(values.hours),
      intervalS: Number(values.interval),
      psm: psm > 0 ? { share: psm, batchIntervalS: Number(values['batch-s']) } : undefined,
      wallS: Math.round(r.wallMs / 100) / 10,
      moves: eqs.reduce((a, e) => a + e.moves, 0),
      productionChanges: eqs.reduce((a, e) => a + e.productionChanges, 0),
      steadyStateHoursPerEquipment: Math.round(steadyTotal / eqs.length / 36) / 100,
      powerExcessPct: { weighted: excessAll * 100, p50: pct(excess, 0.5), p95: pct(excess, 0.95), max: excess.at(-1) },
      aboveMaxPctOfTime: { p50: pct(above, 0.5), p95: pct(above, 0.95), max: above.at(-1) },
      savings: {
        trueKWh: Math.round(savedTrue / 1000),
        reportedKWh: Math.round(savedReported / 1000),
        ratio: savedReported / savedTrue,
        perEquipmentRatio: { min: ratios[0], p50: pct(ratios, 0.5), max: ratios.at(-1) },
      },
      equipmentOver3Pct: eqs.filter((e) => e.excess > 0.03).map((e) => `${e.scope} ${(e.excess * 100).toFixed(2)} %`),
      equipmentOver1PctAboveMax: eqs.filter((e) => e.aboveMaxS / r.durationS > 0.01).length,
    },
    null,
    2,
  ),
)
