// Readings per second per core through the processor's whole per-reading path (issue 5 "Measured"):
// topic and SenML decoding, range checks, dedup and ordering, energy into buckets, detection, live
// state; bucket and alert events taken five times a simulated second and live figures of the
// changed scopes once a simulated second, as the processor does. No bus and no disk: those are
// measured by the broker and fleet benchmarks. The messages are made first (the simulator, NB-IoT
// faults on), then only the ingest loop is timed.
//
//   node --import tsx services/processor/bench/pipeline.ts [--devices 4000] [--minutes 10]

import { parseArgs } from 'node:util'
import { deviceTopic } from '@plantwatt/contract'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex } from '@plantwatt/plant'
import { type OutgoingMessage, PlantSimulation } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { FAULT_PRESETS } from '../../../simulators/fleet/src/run/faults.ts'

const { values } = parseArgs({
  options: { devices: { type: 'string', default: '4000' }, minutes: { type: 'string', default: '10' } },
})
const devices = Number(values.devices)
const minutes = Number(values.minutes)
// 08:00 in Yibin: production running.
const START_S = Date.UTC(2025, 2, 4, 0, 0) / 1000

const model = generatePlant({ devices, seed: 1 })
const plant = new PlantIndex(model)
const sim = new PlantSimulation({ plant: model, seed: 1, startS: START_S, faults: FAULT_PRESETS.nbiot })
const messages: { topic: string; payload: Buffer; atMs: number }[] = []
for (let t = START_S; t < START_S + minutes * 60; t += 60) {
  for (const message of sim.advanceTo(t + 60) as OutgoingMessage[]) {
    if (message.kind === 'up') {
      messages.push({
        topic: deviceTopic(message.site, message.deviceId, 'up'),
        payload: message.payload,
        atMs: message.sendAtS * 1000,
      })
    }
  }
}

const pipeline = new ReadingPipeline(plant)
let bucketEvents = 0
let alertEvents = 0
let liveFigures = 0
let nextEventsMs = START_S * 1000
let nextLiveMs = START_S * 1000
const startedCpu = process.cpuUsage()
const started = process.hrtime.bigint()
for (const message of messages) {
  pipeline.ingest(message.topic, message.payload, message.atMs)
  if (message.atMs >= nextEventsMs) {
    bucketEvents += pipeline.takeBucketEvents().length
    alertEvents += pipeline.takeAlertEvents().length
    nextEventsMs = message.atMs + 200
  }
  if (message.atMs >= nextLiveMs) {
    const changes = pipeline.takeChanges()
    for (const scopes of changes.scopes.values()) for (const node of scopes) pipeline.figures(node) && liveFigures++
    nextLiveMs = message.atMs + 1000
  }
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9
const cpu = process.cpuUsage(startedCpu)
const { stats } = pipeline
const readings = stats.readingsAccepted + stats.readingsDuplicate + stats.readingsRejected
console.log(
  JSON.stringify(
    {
      devices: plant.devices.size,
      simulatedMinutes: minutes,
      messages: messages.length,
      readings,
      accepted: stats.readingsAccepted,
      duplicates: stats.readingsDuplicate,
      rejected: stats.rejectedByReason,
      seconds: Math.round(seconds * 100) / 100,
      cpuSeconds: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
      readingsPerS: Math.round(readings / seconds),
      messagesPerS: Math.round(messages.length / seconds),
      bucketEvents,
      alertEvents,
      liveFigures,
      heapMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      rssMB: Math.round(process.memoryUsage.rss() / 2 ** 20),
    },
    null,
    2,
  ),
)
