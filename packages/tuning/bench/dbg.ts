import { fitPowerCurve } from '../src/index.ts'
import { runClosedLoop } from '../test/sim-loop.ts'

const n = Number(process.argv[2])
let web = 0,
  saving = 0,
  runningNotActive = 0
const r = runClosedLoop({
  devices: 1500,
  tuned: n,
  hours: Number(process.argv[3] ?? 72),
  reportIntervalS: 10,
  onStep: (now, scope, eq: any, tuner: any) => {
    if (!scope.endsWith(`coater-${n}-oven`)) return
    if (eq.web) web++
    if (tuner.s.lastSavedW > 0) saving++
    if (eq.web && tuner.s.lastSavedW === 0) runningNotActive++
  },
})
const e = r.equipment.at(-1)!
const st = r.tuners.get(e.scope)!.toJSON()
console.log(
  e.savedReportedWh / e.savedTrueWh,
  { web, saving, runningNotActive },
  st.equipmentState,
  st.activeFloor,
  st.slopes.length,
  fitPowerCurve(st.slopes),
)
console.log(st.slopes.map((s) => `${s.from.toFixed(1)}>${s.to.toFixed(1)}:${(s.dP / 1000).toFixed(2)}`).join(' '))
