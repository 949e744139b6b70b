// Readings per second through decodeSenml → Accounting.accept on one core, and the bucket history's
// memory per device at 100,000 devices. Run: node --import tsx packages/accounting/bench/accept.ts
// The messages are made first (simulator, NB-IoT faults on) and only the decode → accept loop is timed.

import { decodeSenml } from '@plantwatt/contract'
import { generatePlant, type OutgoingMessage, PlantSimulation } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import { Accounting } from '../src/index.ts'

const DEVICES = Number(process.env.DEVICES ?? 2000)
const MINUTES = Number(process.env.MINUTES ?? 5)
const START = Date.UTC(2025, 2, 3, 1, 0) / 1000

const model = generatePlant({ devices: DEVICES, seed: 1 })
const plant = new PlantIndex(model)
const sim = new PlantSimulation({
  plant: model,
  seed: 1,
  startS: START,
  faults: {
    psm: { share: 0.3, batchIntervalS: 120 },
    latency: { meanMs: 400, jitterMs: 300 },
    loss: { probability: 0.02, retransmitAfterS: 20 },
    reorder: { probability: 0.02 },
  },
})
const messages: OutgoingMessage[] = []
for (let t = START; t < START + MINUTES * 60; t += 60) messages.push(...sim.advanceTo(t + 60))
const ups = messages.filter((m) => m.kind === 'up')

const engine = new Accounting(plant)
let readings = 0
let events = 0
const began = process.hrtime.bigint()
for (let i = 0; i < ups.length; i++) {
  const m = ups[i]!
  const device = plant.device(m.deviceId)!
  const { readings: decoded } = decodeSenml(m.payload, { receivedAt: m.sendAtS })
  for (let k = 0; k < decoded.length; k++) {
    engine.accept(device, decoded[k]!)
    readings++
  }
  // Bucket events are taken about once a simulated second, as the processor would.
  if ((i & 1023) === 0) events += engine.takeBucketEvents().length
}
events += engine.takeBucketEvents().length
const seconds = Number(process.hrtime.bigint() - began) / 1e9
console.log(
  JSON.stringify({
    devices: DEVICES,
    messages: ups.length,
    readings,
    seconds: Math.round(seconds * 100) / 100,
    readingsPerS: Math.round(readings / seconds),
    bucketEvents: events,
    counters: engine.counters,
  }),
)

// Bucket history at 100,000 devices: typed arrays allocated up front, so their size is the figure.
const big = new PlantIndex(generatePlant({ devices: 100_000, seed: 1 }))
const heapBefore = process.memoryUsage()
const full = new Accounting(big)
const heapAfter = process.memoryUsage()
const bytes = full.historyBytes()
console.log(
  JSON.stringify({
    devices: 100_000,
    equipment: [...big.sites.values()].reduce((n, s) => n + s.equipment.length, 0),
    historyBytes: bytes,
    historyBytesPerDevice: Math.round(bytes / 100_000),
    arrayBuffersDeltaPerDevice: Math.round((heapAfter.arrayBuffers - heapBefore.arrayBuffers) / 100_000),
  }),
)
