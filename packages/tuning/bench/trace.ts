import { runClosedLoop } from '../test/sim-loop.ts'
const t0 = Date.UTC(2026, 0, 5) / 1000
const from = Number(process.argv[3] ?? 0), to = Number(process.argv[4] ?? 24)
const r = runClosedLoop({ devices: 60, tuned: 1, hours: Number(process.argv[2] ?? 24), reportIntervalS: 10, onStep: (now, scope, eq: any, tuner) => {
  const h = (now - t0) / 3600
  if (h >= from && h <= to && Math.round(now) % 60 === 0) console.log(h.toFixed(3), 'web', eq.web, 'rate', eq.rate.toFixed(3), 'pv', eq.pv.toFixed(1), 'fAct', eq.fAct.toFixed(2), 'sp', tuner.current, 'f*', eq.feasible.toFixed(2), 'mode', eq.mode, 'held', tuner.heldReason)
}})
for (const e of r.events) if (e.status !== 'applied') { const h = (e.at/1000 - t0)/3600; if (h>=from && h<=to) console.log(h.toFixed(3), e.status, e.from, '->', e.to, e.reason) }
