// Event-loop delay while the processor writes its checkpoint (issue 13 "Checkpoints that grow with
// what changed"): a plant of --devices devices runs --minutes simulated minutes through the real
// processor (journal-less, in-process bus, the history store and the processor's state store in a
// temp dir); then --checkpoints rounds of one more simulated minute each followed by a checkpoint,
// while a 1 ms timer measures how long the event loop is held during the checkpoints only.
// Reported per checkpoint: bytes by part (columns, reading log chunks, detection, the rest's blob),
// readings logged, write time and the event loop held by its synchronous parts (Processor
// lastCheckpoint.heldMs); event-loop delay p50/p99/max during the checkpoints and in a quiet second;
// the state store's size; garbage collection pauses that began during each checkpoint (gc: count,
// total and longest, ms: they hold the loop too, in whichever turn they fall).
//
// With --parts, the snapshot's turn is split into its parts (snapshotParts, ms, summed over the
// checkpoint's rounds): the pipeline's snapshot, in it accounting's (in it the reading log's chunk)
// and detection's beginning; the rest of the turn (heldMs.snapshot less pipelineSnapshot) is the
// tuners' state and node:v8 of the blob. captureFirstSlice is the capture's first later turn.
//
//   node --import tsx services/processor/bench/checkpoint-loop-delay.ts [--devices 10000] [--minutes 30] [--checkpoints 5] [--parts]

import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { createAedesBus } from '@plantwatt/bus'
import { deviceTopic } from '@plantwatt/contract'
import { HistoryStore } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import pino from 'pino'
import { type OutgoingMessage, PlantSimulation } from '../../../simulators/fleet/src/model/index.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { Processor } from '../src/processor.ts'

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    minutes: { type: 'string', default: '30' },
    checkpoints: { type: 'string', default: '5' },
    // Times the parts of the snapshot's turn (wrapping them here, not in the processor): accounting's
    // snapshot (its reading log's chunk, the rest), detection's beginning, the capture's first slice.
    parts: { type: 'boolean', default: false },
  },
})
const devices = Number(values.devices)
const minutes = Number(values.minutes)
const checkpoints = Number(values.checkpoints)
const START_S = Date.UTC(2025, 2, 4, 0, 0) / 1000

const model = generatePlant({ devices, seed: 1 })
const plant = new PlantIndex(model)
const sim = new PlantSimulation({ plant: model, seed: 1, startS: START_S })
const dir = await mkdtemp(join(tmpdir(), 'plantwatt-checkpoint-bench-'))
const aedes = await Aedes.createBroker()
const bus = createAedesBus(aedes)
const clock = { ms: START_S * 1000 }
const store = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400 })
const checkpointPath = join(dir, 'processor', 'checkpoint.v8')
const processor = new Processor({
  plant,
  bus,
  logger: pino({ level: 'silent' }),
  now: () => clock.ms,
  checkpointPath,
  checkpointIntervalMs: 3_600_000,
  historyStore: store,
})
await processor.start()

/** Milliseconds spent in each wrapped method since the last take(). */
const partMs: Record<string, number> = {}
function timeMethod(target: object, method: string, name: string) {
  const original = (target as Record<string, (...args: unknown[]) => unknown>)[method]!
  ;(target as Record<string, unknown>)[method] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now()
    try {
      return original.apply(this, args)
    } finally {
      partMs[name] = (partMs[name] ?? 0) + performance.now() - t0
    }
  }
}
function takeParts() {
  const taken = Object.fromEntries(Object.entries(partMs).map(([k, v]) => [k, Math.round(v * 10) / 10]))
  for (const k of Object.keys(partMs)) delete partMs[k]
  return taken
}
if (values.parts) {
  const pipeline = processor.state
  // biome-ignore lint/suspicious/noExplicitAny: reaching into private parts to time them (bench only)
  const store = (pipeline.accounting as any).store
  timeMethod(pipeline, 'snapshotSliced', 'pipelineSnapshot')
  timeMethod(pipeline.accounting, 'snapshotSliced', 'accountingSnapshot')
  timeMethod(store.readingLog, 'begin', 'readingLogBegin')
  timeMethod(store, 'loggedSeries', 'loggedSeries')
  timeMethod(pipeline.detection, 'beginCheckpoint', 'detectionBegin')
  const begin = pipeline.detection.beginCheckpoint.bind(pipeline.detection)
  pipeline.detection.beginCheckpoint = () => {
    const capture = begin()
    let first = true
    const slice = capture.slice.bind(capture)
    capture.slice = (more) => {
      const t0 = performance.now()
      try {
        return slice(more)
      } finally {
        if (first) partMs.captureFirstSlice = performance.now() - t0
        first = false
      }
    }
    return capture
  }
}
let simulatedTo = START_S
async function runMinute() {
  for (const message of sim.advanceTo(simulatedTo + 60) as OutgoingMessage[]) {
    if (message.kind !== 'up') continue
    clock.ms = message.sendAtS * 1000
    processor.state.ingest(deviceTopic(message.site, message.deviceId, 'up'), message.payload, clock.ms)
  }
  simulatedTo += 60
  await processor.historyWritten()
}
for (let i = 0; i < minutes; i++) await runMinute()
// The first checkpoint writes every minute run so far; the measured ones what one minute changed.
await processor.checkpoint()

/**
 * How late a 1 ms timer fires, ms, while it runs. Not monitorEventLoopDelay: enabled again after the
 * simulated minute that runs between two checkpoints, its first sample counts that whole minute.
 */
function loopProbe() {
  const late: number[] = []
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    late.push(Math.max(0, now - last - 1))
    last = now
  }, 1)
  return () => {
    clearInterval(timer)
    return late
  }
}
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
const summary = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const r = (x: number) => Math.round(x * 100) / 100
  return {
    p50: r(percentile(sorted, 50)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted.at(-1) ?? 0),
    samples: sorted.length,
  }
}

/** Garbage collection pauses (start, duration ms): the loop is held by them too, wherever they fall. */
const gcPauses: { start: number; ms: number }[] = []
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push({ start: entry.startTime, ms: entry.duration })
}).observe({ entryTypes: ['gc'] })
const gcDuring = (from: number, to: number) => {
  const inside = gcPauses.filter((p) => p.start >= from && p.start < to)
  const r = (x: number) => Math.round(x * 10) / 10
  return {
    count: inside.length,
    totalMs: r(inside.reduce((n, p) => n + p.ms, 0)),
    maxMs: r(Math.max(0, ...inside.map((p) => p.ms))),
  }
}

const stopQuiet = loopProbe()
await new Promise((resolve) => setTimeout(resolve, 1000))
const quiet = stopQuiet()

const delay: number[] = []
const written: {
  ms: number
  heldMs: Record<string, number>
  slices: number
  parts: Record<string, number>
  readings: number
  columns: number
  gc: ReturnType<typeof gcDuring>
  snapshotParts?: Record<string, number>
}[] = []
for (let i = 0; i < checkpoints; i++) {
  await runMinute()
  takeParts()
  const stop = loopProbe()
  const started = performance.now()
  await processor.checkpoint()
  const ms = performance.now() - started
  delay.push(...stop())
  // The observer is told of a pause after it: one more turn for those of this checkpoint.
  await new Promise((resolve) => setImmediate(resolve))
  const gc = gcDuring(started, started + ms)
  const last = processor.lastCheckpoint!
  const r = (x: number) => Math.round(x * 10) / 10
  written.push({
    ms: Math.round(ms),
    heldMs: Object.fromEntries(Object.entries(last.heldMs).map(([k, v]) => [k, r(v)])),
    slices: last.slices,
    parts: last.parts,
    readings: last.readings,
    columns: last.columns,
    gc,
    ...(values.parts ? { snapshotParts: takeParts() } : {}),
  })
}
const stateFile = (await stat(join(dir, 'processor', 'state', 'data.mdb'))).size
console.log(
  JSON.stringify(
    {
      devices,
      minutes,
      readingsAccepted: processor.stats.readingsAccepted,
      checkpoints: written,
      loopDelayDuringCheckpointMs: summary(delay),
      loopDelayQuietMs: summary(quiet),
      stateStoreFileBytes: stateFile,
      storeRowsWritten: processor.historySink?.counters.written,
    },
    null,
    2,
  ),
)

await processor.stop()
await store.close()
await bus.close()
await new Promise<void>((resolve) => aedes.close(() => resolve()))
await rm(dir, { recursive: true, force: true })
