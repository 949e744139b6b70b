// Throughput of the plant simulation on one core: `npx tsx simulators/fleet/src/model/throughput.ts
// [devices] [simulated seconds] [faults]`. Prints packs per wall-clock second and the speed-up over
// real time at one pack per device per second. Not a test: timings belong in docs/benchmarks.md.

import { generatePlant } from '../plant-generator.ts'
import { type FaultOptions, PlantSimulation } from './simulation.ts'

const devices = Number(process.argv[2] ?? 40_000)
const seconds = Number(process.argv[3] ?? 60)
const withFaults = process.argv[4] === 'faults'
const faults: FaultOptions | undefined = withFaults
  ? {
      psm: { share: 0.2, batchIntervalS: 60 },
      latency: { meanMs: 300, jitterMs: 200 },
      loss: { probability: 0.01, retransmitAfterS: 10 },
      reorder: { probability: 0.01 },
      clockDriftPpm: 50,
      counterResets: { perDevicePerDay: 1 },
    }
  : undefined
const plant = generatePlant({ devices, seed: 1 })
const startS = Date.UTC(2025, 2, 3, 0, 0, 0) / 1000
let t0 = process.hrtime.bigint()
const sim = new PlantSimulation({ plant, seed: 1, startS, faults })
const buildMs = Number(process.hrtime.bigint() - t0) / 1e6
sim.advanceTo(startS + 5) // warm-up
t0 = process.hrtime.bigint()
let messages = 0
let bytes = 0
for (let t = 6; t <= 5 + seconds; t++) {
  for (const m of sim.advanceTo(startS + t)) {
    messages++
    bytes += m.payload.length
  }
}
const wallS = Number(process.hrtime.bigint() - t0) / 1e9
const packs = devices * seconds
console.log(
  JSON.stringify({
    devices,
    simulatedS: seconds,
    faults: withFaults,
    buildMs: Math.round(buildMs),
    wallS: Math.round(wallS * 1000) / 1000,
    messages,
    meanPayloadBytes: Math.round(bytes / Math.max(1, messages)),
    packsPerWallS: Math.round(packs / wallS),
    timesRealTime: Math.round((seconds / wallS) * 10) / 10,
    rssMB: Math.round(process.memoryUsage().rss / 1e6),
  }),
)
