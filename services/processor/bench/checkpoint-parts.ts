// What the processor's checkpoint state is made of, part by part (issue 13): a generated plant runs
// --minutes simulated minutes through the real processor (no journal, no state store), then the
// pipeline's snapshot is split into its parts and each is measured (node:v8 bytes, and for
// detection the bytes of each kind of per-equipment state), so that slimming starts where the bytes are.
//
//   node --import tsx services/processor/bench/checkpoint-parts.ts [--devices 2000] [--minutes 5]

import { parseArgs } from 'node:util'
import { serialize } from 'node:v8'
import { createAedesBus } from '@plantwatt/bus'
import { deviceTopic } from '@plantwatt/contract'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { type OutgoingMessage, PlantSimulation } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { Processor } from '../src/processor.ts'

const { values } = parseArgs({
  options: { devices: { type: 'string', default: '2000' }, minutes: { type: 'string', default: '5' } },
})
const devices = Number(values.devices)
const minutes = Number(values.minutes)
const START_S = Date.UTC(2025, 2, 4, 0, 0) / 1000
const model = generatePlant({ devices, seed: 1 })
const plant = new PlantIndex(model)
const sim = new PlantSimulation({ plant: model, seed: 1, startS: START_S })
const aedes = await Aedes.createBroker()
const bus = createAedesBus(aedes)
const clock = { ms: START_S * 1000 }
const processor = new Processor({ plant, bus, logger: pino({ level: 'silent' }), now: () => clock.ms })
await processor.start()
let simulatedTo = START_S
function runMinute() {
  simulatedTo += 60
  for (const message of sim.advanceTo(simulatedTo) as OutgoingMessage[]) {
    if (message.kind !== 'up') continue
    clock.ms = message.sendAtS * 1000
    processor.state.ingest(deviceTopic(message.site, message.deviceId, 'up'), message.payload, clock.ms)
  }
}
for (let m = 1; m <= minutes; m++) runMinute()
// A first snapshot takes everything so far (the first checkpoint); the timed ones what a minute changed.
processor.state.accounting.snapshot()
// The synchronous parts, each timed on a snapshot after one more simulated minute (what a running
// plant's checkpoint takes), least of 3 (a machine shared with other work).
function timed<T>(run: () => T, before = () => {}): [T, number] {
  let best = Number.POSITIVE_INFINITY
  let value!: T
  for (let i = 0; i < 3; i++) {
    before()
    const t0 = performance.now()
    value = run()
    best = Math.min(best, performance.now() - t0)
  }
  return [value, Math.round(best * 10) / 10]
}
const [, accountingMs] = timed(() => processor.state.accounting.snapshot(), runMinute)
const [, detectionMs] = timed(() => processor.state.detection.checkpoint())
const { state } = processor.state.snapshot()
const [, detectionV8Ms] = timed(() => serialize(state.detection))
const [, blobV8Ms] = timed(() => serialize({ ...state, detection: null }))
const ms = { accountingMs, detectionMs, detectionV8Ms, blobV8Ms }
const size = (x: unknown) => serialize(x).byteLength
const eqParts: Record<string, number> = {}
let equipment = 0
for (const site of state.detection.sites) {
  for (const eq of site.equipment) {
    equipment++
    for (const [key, value] of Object.entries(eq)) eqParts[key] = (eqParts[key] ?? 0) + size(value)
    if (eq.learner) eqParts['learner.histogram'] = (eqParts['learner.histogram'] ?? 0) + size(eq.learner.histogram)
    eqParts['anomaly.histogram'] = (eqParts['anomaly.histogram'] ?? 0) + size(eq.anomaly.histogram)
  }
}
const siteParts: Record<string, number> = {}
for (const site of state.detection.sites) {
  for (const key of ['buffer', 'offline', 'held'] as const) siteParts[key] = (siteParts[key] ?? 0) + size(site[key])
}
console.log(
  JSON.stringify(
    {
      devices,
      minutes,
      equipment,
      ms,
      accounting: {
        packedReadingsBytes: processor.state.accounting.packSeries().data.byteLength,
        restBytes: size({ ...state.accounting, devices: null }),
        parts: Object.fromEntries(Object.entries(state.accounting).map(([k, v]) => [k, size(v)])),
        siteParts: Object.fromEntries(
          Object.keys(state.accounting.sites[0] ?? {}).map((k) => [
            k,
            state.accounting.sites.reduce((n, s) => n + size((s as unknown as Record<string, unknown>)[k]), 0),
          ]),
        ),
      },
      devicesBytes: size(state.devices),
      statsBytes: size(state.stats),
      detection: {
        totalBytes: size(state.detection),
        alertsBytes: size(state.detection.alerts),
        sites: siteParts,
        equipment: eqParts,
      },
    },
    null,
    2,
  ),
)
await processor.stop()
await bus.close()
await new Promise<void>((resolve) => aedes.close(() => resolve()))
