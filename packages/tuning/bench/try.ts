import { runClosedLoop } from '../test/sim-loop.ts'
const r = runClosedLoop({ devices: Number(process.argv[2] ?? 60), hours: Number(process.argv[3] ?? 24), reportIntervalS: Number(process.argv[4] ?? 10) })
for (const e of r.equipment) console.log(JSON.stringify({ ...e, excess: +(e.excess*100).toFixed(2), abovePct: +(100*e.aboveMaxS/r.durationS).toFixed(3), savedRatio: +(e.savedReportedWh/e.savedTrueWh).toFixed(3) }))
console.log('wall', r.wallMs, 'events', r.events.length, 'alerts', r.alerts)
const byStatus = {}; for (const e of r.events) byStatus[e.status+':'+e.reason.replace(/[0-9.]+/g,'#').slice(0,60)] = (byStatus[e.status+':'+e.reason.replace(/[0-9.]+/g,'#').slice(0,60)]??0)+1
console.log(byStatus)
