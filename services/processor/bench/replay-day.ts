// Issue 5, second half: a 24-hour recording of a 40,000-device plant replayed at maximum speed
// through the processor's reading pipeline, scored against the simulator's ground truth.
//
//   pnpm bench:replay-day [--devices 40000] [--hours 24] [--interval 60] [--out FILE]
//
// 1. The recording (docs/recording-format.md) and its truth are made once by the fleet simulator's
//    own model and recording writer, in process (day-recording.ts), and cached under .bench-data/.
// 2. The recording is streamed (never held whole) and every uplink goes, in recorded order, through
//    ReadingPipeline.ingest — topic and SenML decoding, range checks, dedup and ordering, energy into
//    buckets, detection — with the recorded send time as the time of receipt (what the ingest
//    journal records). As services/processor/src/processor.ts does on its timer, every 200 ms of
//    wall time bucket and alert events are taken, and with `--live on` live figures made by the
//    processor's own LivePublisher (the watched scopes that changed, per site once a batch
//    interval, encoded as for the gateways) on a bus that drops them. No broker, no journal, no
//    disk: "the processor alone", its cost per reading at the speed a recording can be fed. The
//    broker and fleet benchmarks measure what lies in front.
//
// Live figures are off by default, as in the first runs of this benchmark (docs/benchmarks.md);
// `--live on` computes them for `--watched` scopes (issue 14), `--watched 0` as before issue 14.
// 3. Throughput, CPU and memory are taken over step 2 only; then the figures are scored against
//    the truth (score-truth.ts).

import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { writeHeapSnapshot } from 'node:v8'
import {
  type Bus,
  type BusHandler,
  INTEREST_SCOPES_PER_MESSAGE,
  LIVE_INTEREST_TOPIC,
  type LiveInterest,
} from '@plantwatt/bus'
import type { Alert, PlantModel } from '@plantwatt/contract'
import { deviceTopic } from '@plantwatt/contract'
import { ReadingPipeline } from '@plantwatt/pipeline'
import { PlantIndex, type ScopeNode } from '@plantwatt/plant'
import { startLoopDelayMonitor } from '@plantwatt/runtime'
import pino from 'pino'
import { decodeRecordLine } from '../../../simulators/fleet/src/recording/index.ts'
import { detectionArrays, deviceArrays, encodeReadingsState, encodeStateBlob } from '../src/checkpoint-file.ts'
import { LivePublisher, pipelineLiveSource } from '../src/live-publisher.ts'
import { type DaySpec, ensureDayRecording } from './day-recording.ts'
import { openRecordingBatches } from './recording-batches.ts'
import { scoreEnergy, scoreIdle } from './score-truth.ts'
import { readTruthFile } from './truth-file.ts'

const HELP = `Usage: pnpm bench:replay-day [options]

  --devices N      devices of the generated plant (default 40000)
  --hours H        simulated hours recorded (default 24)
  --interval S     seconds between a device's readings (default 60; the simulator's own default of 1 s
                   would make 3.5 billion messages a day at 40,000 devices)
  --faults P       simulator fault preset: nbiot or none (default nbiot)
  --seed S         plant and simulation seed (default 1)
  --start T        simulated start, ISO 8601 or epoch s (default 2025-03-03T16:00:00Z, midnight in Yibin)
  --data-dir DIR   recording cache (default .bench-data/replay-day)
  --live on|off    also make live figures with the processor's LivePublisher (default off: see
                   docs/benchmarks.md): per site at most every 1,025 ms of wall time, the watched
                   scopes that changed, encoded and then dropped
  --watched N      scopes live subscribers watch with --live on (default 1000: the site, its areas,
                   then lines and equipment in turn, evenly over the plant); 0: every changed scope
                   every 200 ms (the processor before issue 14)
  --replay-hours H replay only the first H simulated hours (no scoring then)
  --checkpoint-every S
                   take the processor's checkpoint snapshot every S seconds of wall time, as the
                   processor does (default 60, its interval), without writing it: what the engine
                   keeps only until a checkpoint takes it is then let go; 0: never (runs before
                   issue 14's multi-day runs)
  --heap-snapshots DIR
                   at the end of each simulated day, also write a V8 heap snapshot there
                   (day-N.heapsnapshot; with the day's heap after a full GC, which every run
                   reports): to find what grows from one day to the next
  --generate-only  make (or find) the recording and stop
  --out FILE       also write the results as JSON here
`

/** As the processor's timer (processor.ts publishIntervalMs). */
const PUBLISH_MS = 200
const PROGRESS_MS = 30_000
const MB = 2 ** 20

const argv = process.argv.slice(2)
if (argv[0] === '--') argv.shift()
const { values } = parseArgs({
  args: argv,
  options: {
    devices: { type: 'string', default: '40000' },
    hours: { type: 'string', default: '24' },
    interval: { type: 'string', default: '60' },
    faults: { type: 'string', default: 'nbiot' },
    seed: { type: 'string', default: '1' },
    start: { type: 'string', default: '2025-03-03T16:00:00Z' },
    'data-dir': { type: 'string', default: '.bench-data/replay-day' },
    'generate-only': { type: 'boolean', default: false },
    live: { type: 'string', default: 'off' },
    watched: { type: 'string', default: '1000' },
    'replay-hours': { type: 'string' },
    'checkpoint-every': { type: 'string', default: '60' },
    'heap-snapshots': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
const positive = (name: string, text: string): number => {
  const value = Number(text)
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`--${name} must be a positive number, got ${text}`)
  return value
}
const startS = /^\d+(\.\d+)?$/.test(values.start) ? Number(values.start) : Date.parse(values.start) / 1000
if (!Number.isFinite(startS)) throw new RangeError(`--start: not a time: ${values.start}`)
const spec: DaySpec = {
  devices: Math.round(positive('devices', values.devices)),
  seed: Math.round(Number(values.seed)),
  durationS: Math.round(positive('hours', values.hours) * 3600),
  intervalS: positive('interval', values.interval),
  faults: values.faults,
  startS,
}
if (values.live !== 'on' && values.live !== 'off') throw new RangeError(`--live must be on or off, got ${values.live}`)
const live = values.live === 'on'
const watchedCount = Number(values.watched)
if (!Number.isInteger(watchedCount) || watchedCount < 0)
  throw new RangeError(`--watched must be a whole number, got ${values.watched}`)
const replayUntilS =
  values['replay-hours'] === undefined
    ? Number.POSITIVE_INFINITY
    : startS + positive('replay-hours', values['replay-hours']) * 3600
const checkpointEveryS = Number(values['checkpoint-every'])
if (!(checkpointEveryS >= 0))
  throw new RangeError(`--checkpoint-every must be 0 or more, got ${values['checkpoint-every']}`)
const log = (line: string) => process.stderr.write(`replay-day: ${line}\n`)

const machine = {
  nproc: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  kernel: release(),
  node: process.version,
}
// The code measured: the commit, and any uncommitted change to the code on the replay's path (the
// working tree is shared with other work in progress).
const source = (() => {
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim()
  try {
    const paths = ['services/processor/src', 'packages', 'simulators/fleet/src']
    const dirty = git('status', '--porcelain', '--', ...paths)
    return { commit: git('rev-parse', 'HEAD'), uncommitted: dirty === '' ? [] : dirty.split('\n') }
  } catch {
    return { commit: 'unknown', uncommitted: [] }
  }
})()
const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100)
log(`machine ${JSON.stringify(machine)}, load ${loadAtStart.join(' ')}`)

const { files, generated } = await ensureDayRecording(spec, resolve(values['data-dir']), log)
log(
  `${generated ? 'made' : 'cached'}: ${files.recording} (${files.meta.messages} messages, ` +
    `${Math.round(files.meta.recordingBytes / MB)} MB; generated in ${files.meta.generateSeconds} s)`,
)
if (values['generate-only']) process.exit(0)

const plantModel = JSON.parse(await readFile(files.plant, 'utf8')) as PlantModel
const plant = new PlantIndex(plantModel)
const pipeline = new ReadingPipeline(plant)
// The replay runs in this process: the event loop waits between batches of the recording, so the
// delay is how long one batch (and its 200 ms publish) holds the loop.
const loopDelay = startLoopDelayMonitor()
const run = await replay(pipeline, files.recording)
const eventLoopDelay = loopDelay.summary()
loopDelay.stop()
const loadAtEnd = loadavg().map((x) => Math.round(x * 100) / 100)
const whole = run.lastT >= spec.startS + spec.durationS - spec.intervalS

// Scoring, after the measurement. Let every site's watermark pass the end of the recording, as the
// detection tests do, so alerts due by the end (and clears held until their minute is final) are out.
const detection = pipeline.detection
for (const [siteId, site] of plant.sites) {
  const clock = pipeline.accounting.siteClock(siteId)
  if (clock !== undefined) detection.advance(siteId, clock + 2 * site.latenessS + 61)
}
for (const { event } of pipeline.takeAlertEvents()) run.alerts.push(event)
const accuracy = whole ? await score() : 'not scored: only part of the recording was replayed'
const alertsByKind: Record<string, number> = {}
for (const alert of run.alerts) {
  if (alert.state === 'raised') alertsByKind[alert.kind] = (alertsByKind[alert.kind] ?? 0) + 1
}

const { stats } = pipeline
const readings = stats.readingsAccepted + stats.readingsDuplicate + stats.readingsRejected
const result = {
  command: `pnpm bench:replay-day ${argv.join(' ')}`.trim(),
  date: new Date().toISOString(),
  machine,
  source,
  load: { atStart: loadAtStart, atEnd: loadAtEnd },
  recording: {
    ...files.meta,
    file: files.recording,
    devices: plant.devices.size,
    equipment: [...plant.sites.values()].reduce((n, site) => n + site.equipment.length, 0),
  },
  replay: {
    wallSeconds: round(run.wallMs / 1000, 2),
    cpuSeconds: round(run.cpuMs / 1000, 2),
    pipelineSeconds: round(run.pipelineMs / 1000, 2),
    readSeconds: round(run.readMs / 1000, 2),
    messages: run.uplinks,
    otherMessages: run.other,
    readings,
    readingsPerS: Math.round(readings / (run.wallMs / 1000)),
    packsPerS: Math.round(run.uplinks / (run.wallMs / 1000)),
    pipelineReadingsPerS: Math.round(readings / (run.pipelineMs / 1000)),
    cpuMicrosPerReading: round((run.cpuMs * 1000) / readings, 2),
    pipelineMicrosPerReading: round((run.pipelineMs * 1000) / readings, 2),
    simulatedHours: round((run.lastT - spec.startS) / 3600, 2),
    simulatedSecondsPerWallSecond: Math.round((run.lastT - spec.startS) / (run.wallMs / 1000)),
    live,
    watched: live ? watchedCount : null,
    eventLoopDelay,
    publishSeconds: round(run.publishMs / 1000, 2),
    publishTicks: run.ticks,
    perHour: run.perHour,
    bucketEvents: run.bucketEvents,
    bucketRevisions: run.bucketRevisions,
    revisionsBy: run.revisionsBy,
    // Issue 14: bucket events at most twice the bucket slots (scopes × buckets of each step closed).
    bucketSlots: bucketSlots((run.lastT - spec.startS) / 60),
    liveFigures: run.liveFigures,
    liveBatches: run.liveBatches,
    liveMB: round(run.liveBytes / MB, 1),
    checkpointEveryS: checkpointEveryS,
    checkpoints: run.checkpoints,
    checkpointSeconds: round(run.checkpointMs / 1000, 2),
    longestCheckpointMs: Math.round(run.longestCheckpointMs),
    coldEvents: run.coldEvents,
    memory: {
      peakRssMB: Math.round(run.peakRssBytes / MB),
      peakHeapUsedMB: Math.round(run.peakHeapBytes / MB),
      endHeapAfterGcMB: run.endHeapAfterGcBytes === null ? null : Math.round(run.endHeapAfterGcBytes / MB),
      endExternalMB: Math.round(run.endExternalBytes / MB),
      bucketHistoryMB: Math.round(pipeline.accounting.historyBytes() / MB),
    },
  },
  counts: {
    accepted: stats.readingsAccepted,
    duplicates: stats.readingsDuplicate,
    rejected: stats.readingsRejected,
    rejectedByReason: stats.rejectedByReason,
    unknownDeviceMessages: stats.unknownDeviceMessages,
    behindWatermark: detection.behindWatermark,
    approximated: pipeline.accounting.counters.approximated,
    beyondHistory: pipeline.accounting.counters.beyondHistory,
  },
  alertsRaisedByKind: alertsByKind,
  accuracy,
}
const text = `${JSON.stringify(result, null, 2)}\n`
process.stdout.write(text)
if (values.out) {
  await mkdir(dirname(resolve(values.out)), { recursive: true })
  await writeFile(resolve(values.out), text)
}

async function score() {
  const truth = await readTruthFile(files.truth)
  const endS = spec.startS + spec.durationS
  const latenessS = Math.max(...[...plant.sites.values()].map((site) => site.latenessS))
  const idle = scoreIdle(run.alerts, truth, {
    endS,
    tailS: latenessS + spec.intervalS,
    learnMinSpanS: pipeline.detection.options.learnMinSpanS,
    intervalS: spec.intervalS,
  })
  // The learned thresholds in force at the end for the equipment with misses, to tell their causes.
  const learnedOfMissed = Object.fromEntries(
    [...new Set(idle.missed.filter((m) => m.source !== 'model').map((m) => m.scope))].map((scope) => [
      scope,
      pipeline.detection.thresholds(scope),
    ]),
  )
  // Energy from the 1-minute history, which holds the last 25 h: over a longer run, its last day.
  const energyFromS = Math.max(spec.startS, endS - 86_400)
  return { energy: scoreEnergy(pipeline.accounting, plant, truth, endS, energyFromS), idle, learnedOfMissed }
}

interface HourFigures {
  hour: number
  readings: number
  wallSeconds: number
  readingsPerS: number
  /** Main-thread seconds in pipeline.ingest() (publishing work and checkpoints excluded). */
  ingestSeconds: number
  /** Main-thread seconds in the publishing work (bucket events, alerts, live figures). */
  publishSeconds: number
  /** Main-thread seconds taking checkpoint snapshots (--checkpoint-every). */
  checkpointSeconds: number
  /**
   * Main-thread seconds reading the recording's lines (topic, payload, time): work that does not
   * depend on the pipeline's state, so its cost per message is a yardstick of the machine's speed
   * in that hour (this VM's speed varies by ±25 % over minutes), to tell drift from noise.
   */
  readSeconds: number
  /** ingestSeconds / readSeconds: the pipeline's cost per reading in units of the yardstick. */
  ingestPerRead: number
  bucketEvents: number
  bucketRevisions: number
  /** Wall seconds of garbage collection within the hour (PerformanceObserver 'gc'). */
  gcSeconds: number
  /** V8 heap in use as the hour ended (MB, garbage included). */
  heapUsedMB: number
  /** Resident set size as the hour ended (MB). */
  rssMB: number
  /**
   * At the end of each simulated day (every 24th hour), the V8 heap in use after a full GC (MB):
   * what the pipeline retains, the figure that says whether memory is flat from day to day. Its
   * time is left out of the hours' figures, not out of the whole run's.
   */
  heapAfterGcMB?: number
  /** Wall clock as the hour ended (to cut a CPU profile by hour: profile-summary.ts --window). */
  endedAt: string
}

interface ReplayRun {
  wallMs: number
  cpuMs: number
  /** Main-thread time inside the pipeline (ingest and the 200 ms publishing work). */
  pipelineMs: number
  /** Of which the 200 ms publishing work (events, and live figures when on). */
  publishMs: number
  /** Latest recorded send time replayed (s). */
  lastT: number
  /**
   * Per simulated hour: readings, and wall seconds spent on them (shows cost that grows with the
   * day), split into ingest and the 200 ms publishing work, with the bucket events taken.
   */
  perHour: HourFigures[]
  /** Main-thread time turning recording lines into topic, payload and time. */
  readMs: number
  uplinks: number
  other: number
  ticks: number
  bucketEvents: number
  /** Of them, revisions (revision > 0). */
  bucketRevisions: number
  /** Revisions by the bucket's step and the scope's level ("1h line"), to tell where they come from. */
  revisionsBy: Record<string, number>
  liveFigures: number
  /** With watched scopes: the batches the LivePublisher encoded, and their bytes. */
  liveBatches: number
  liveBytes: number
  /** Checkpoint snapshots taken (--checkpoint-every), the main-thread seconds they took, and the longest. */
  checkpoints: number
  checkpointMs: number
  longestCheckpointMs: number
  /** Revisions of minutes older than the ring, let go by the checkpoints (Accounting.coldCommitted). */
  coldEvents: number
  alerts: Alert[]
  peakRssBytes: number
  peakHeapBytes: number
  endHeapAfterGcBytes: number | null
  endExternalBytes: number
}

/** Scopes × buckets of every step within `minutes` simulated minutes (1m, 15m, 1h, 1d). */
function bucketSlots(minutes: number): number {
  const scopes = [...plant.sites.values()].reduce((n, site) => n + site.scopes.length, 0)
  return Math.round(scopes * (minutes + minutes / 15 + minutes / 60 + minutes / 1440))
}

/**
 * The scopes a realistic set of live subscribers watches: every site and area, then lines and
 * equipment in turn, each level sampled evenly over the plant, `count` in all.
 */
function watchedScopes(plant: PlantIndex, count: number): Set<string> {
  const nodes = [...plant.scopes.values()]
  const byLevel = (level: string) => nodes.filter((node) => node.level === level)
  const watched = new Set<string>()
  for (const node of [...byLevel('site'), ...byLevel('area')]) if (watched.size < count) watched.add(node.scope)
  const lines = byLevel('line')
  const equipment = byLevel('equipment')
  const rest = count - watched.size
  const pick = (list: ScopeNode[], n: number) => {
    const stride = list.length / Math.max(1, n)
    for (let k = 0; k < n && k < list.length; k++) watched.add(list[Math.floor(k * stride)]!.scope)
  }
  pick(lines, Math.ceil(rest / 2))
  pick(equipment, count - watched.size)
  return watched
}

/**
 * The processor's LivePublisher on a bus that sends nothing, told by one gateway (with a lease
 * longer than any run) that `watched` have subscribers: the figures are computed, paced and
 * encoded as in the processor, and dropped where the broker would take them. No timer: the
 * benchmark's 200 ms publishing turn is its tick, as the processor's is.
 */
async function startLivePublisher(pipeline: ReadingPipeline, watched: Set<string>): Promise<LivePublisher> {
  let onInterest: BusHandler | undefined
  const bus: Bus = {
    publish: async () => {},
    async subscribe(filter, handler) {
      if (filter === LIVE_INTEREST_TOPIC) onInterest = handler
      return async () => {}
    },
    close: async () => {},
  }
  const publisher = new LivePublisher({
    plant,
    bus,
    logger: pino({ level: 'warn' }),
    now: () => performance.now(),
    source: pipelineLiveSource(pipeline),
  })
  await publisher.start()
  const scopes = [...watched]
  const leaseMs = 365 * 86_400_000
  for (let from = 0, version = 0; from < scopes.length; from += INTEREST_SCOPES_PER_MESSAGE, version++) {
    const message: LiveInterest = {
      gateway: 'replay-day',
      kind: from === 0 ? 'full' : 'add',
      version,
      leaseMs,
      scopes: scopes.slice(from, from + INTEREST_SCOPES_PER_MESSAGE),
    }
    onInterest?.(LIVE_INTEREST_TOPIC, Buffer.from(JSON.stringify(message)))
  }
  return publisher
}

async function replay(pipeline: ReadingPipeline, path: string): Promise<ReplayRun> {
  const { header, batches } = await openRecordingBatches(path)
  const run: ReplayRun = {
    wallMs: 0,
    cpuMs: 0,
    pipelineMs: 0,
    publishMs: 0,
    lastT: header.startS,
    perHour: [],
    readMs: 0,
    uplinks: 0,
    other: 0,
    ticks: 0,
    bucketEvents: 0,
    bucketRevisions: 0,
    revisionsBy: {},
    liveFigures: 0,
    liveBatches: 0,
    liveBytes: 0,
    checkpoints: 0,
    checkpointMs: 0,
    longestCheckpointMs: 0,
    coldEvents: 0,
    alerts: [],
    peakRssBytes: 0,
    peakHeapBytes: 0,
    endHeapAfterGcBytes: null,
    endExternalBytes: 0,
  }
  const sampleMemory = () => {
    const memory = process.memoryUsage()
    run.peakRssBytes = Math.max(run.peakRssBytes, memory.rss)
    run.peakHeapBytes = Math.max(run.peakHeapBytes, memory.heapUsed)
  }
  const watched = live && watchedCount > 0 ? watchedScopes(plant, watchedCount) : undefined
  const livePublisher = watched === undefined ? undefined : await startLivePublisher(pipeline, watched)
  // What processor.ts publishChanges does, without sending.
  const publish = () => {
    const began = performance.now()
    run.ticks++
    const buckets = pipeline.takeBucketEvents()
    run.bucketEvents += buckets.length
    for (const bucket of buckets) {
      if (bucket.revision === 0) continue
      run.bucketRevisions++
      const key = `${bucket.step} ${plant.scopes.get(bucket.scope)?.level ?? 'unknown'}`
      run.revisionsBy[key] = (run.revisionsBy[key] ?? 0) + 1
    }
    for (const { event } of pipeline.takeAlertEvents()) run.alerts.push(event)
    if (livePublisher) livePublisher.tick()
    else if (live) {
      // `--watched 0`: every changed scope's figures, as the processor did before issue 14.
      const changes = pipeline.takeChanges()
      for (const siteId of changes.sites) {
        pipeline.figures(plant.sites.get(siteId)!.node)
        for (const node of changes.scopes.get(siteId) ?? []) {
          pipeline.figures(node)
          pipeline.equipmentLive(node)
          run.liveFigures++
        }
      }
    } else pipeline.takeChanges()
    if (run.ticks % 5 === 0) sampleMemory()
    run.publishMs += performance.now() - began
  }
  // The processor's checkpoint without the disk (processor.ts snapshotWithHistoryWritten): the
  // sliced snapshot (the columns that changed or left the ring, the reading log's chunk), its
  // slices run back to back rather than a turn each, encoded as the processor encodes them; then
  // the cold revisions the written columns let go. Counted in the hour's ingest time.
  let firstCheckpoint = true
  const checkpoint = () => {
    const began = performance.now()
    const snapshot = pipeline.snapshotSliced(firstCheckpoint)
    firstCheckpoint = false
    const { readings, devices, capture } = snapshot
    try {
      encodeStateBlob({ journalSeq: 0, journalSeqs: {}, savedAt: 0, pipeline: snapshot.state, tuning: undefined })
      const all = () => true
      while (readings.open) readings.slice(all)
      encodeReadingsState(readings.state)
      while (devices.open) devices.slice(all)
      while (!capture.slice(all));
      detectionArrays(capture.chunks)
      deviceArrays(devices.chunks)
      readings.write()
    } finally {
      readings.close()
      devices.close()
      capture.close()
    }
    run.coldEvents += pipeline.accounting.coldCommitted(snapshot.generation).length
    const ms = performance.now() - began
    run.checkpoints++
    run.checkpointMs += ms
    run.longestCheckpointMs = Math.max(run.longestCheckpointMs, ms)
  }
  const readingsSoFar = () =>
    pipeline.stats.readingsAccepted + pipeline.stats.readingsDuplicate + pipeline.stats.readingsRejected
  let hourStartedAt = 0
  let hourReadings = 0
  // Totals at the start of the hour being replayed, to report each hour's share.
  let gcMs = 0
  let hourBase = {
    pipelineMs: 0,
    publishMs: 0,
    checkpointMs: 0,
    readMs: 0,
    gcMs: 0,
    bucketEvents: 0,
    bucketRevisions: 0,
  }
  // The benchmark's own GCs at each day's end (dayEndHeap), left out of the hours' figures.
  const forcedGcs: { from: number; to: number }[] = []
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (!forcedGcs.some((w) => entry.startTime >= w.from && entry.startTime <= w.to)) gcMs += entry.duration
    }
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  const closeHour = (now: number) => {
    const readings = readingsSoFar() - hourReadings
    const wallSeconds = (now - hourStartedAt) / 1000
    const publishMs = run.publishMs - hourBase.publishMs
    const checkpointMs = run.checkpointMs - hourBase.checkpointMs
    const ingestMs = run.pipelineMs - hourBase.pipelineMs - publishMs - checkpointMs
    const readMs = run.readMs - hourBase.readMs
    run.perHour.push({
      hour: run.perHour.length,
      readings,
      wallSeconds: round(wallSeconds, 2),
      readingsPerS: Math.round(readings / wallSeconds),
      ingestSeconds: round(ingestMs / 1000, 2),
      publishSeconds: round(publishMs / 1000, 2),
      checkpointSeconds: round(checkpointMs / 1000, 2),
      readSeconds: round(readMs / 1000, 2),
      ingestPerRead: round(ingestMs / readMs, 2),
      bucketEvents: run.bucketEvents - hourBase.bucketEvents,
      bucketRevisions: run.bucketRevisions - hourBase.bucketRevisions,
      gcSeconds: round((gcMs - hourBase.gcMs) / 1000, 2),
      heapUsedMB: Math.round(process.memoryUsage().heapUsed / MB),
      rssMB: Math.round(process.memoryUsage.rss() / MB),
      endedAt: new Date().toISOString(),
    })
    hourStartedAt = now
    if (run.perHour.length % 24 === 0) {
      // The forced GC and the snapshot are the benchmark's own: not in the next hour (they are in
      // the whole run's wall and CPU time).
      const from = performance.now()
      run.perHour.at(-1)!.heapAfterGcMB = dayEndHeap(run.perHour.length / 24)
      hourStartedAt = performance.now()
      forcedGcs.push({ from, to: hourStartedAt })
    }
    hourReadings += readings
    hourBase = {
      pipelineMs: run.pipelineMs,
      publishMs: run.publishMs,
      checkpointMs: run.checkpointMs,
      readMs: run.readMs,
      gcMs,
      bucketEvents: run.bucketEvents,
      bucketRevisions: run.bucketRevisions,
    }
  }

  const topics: string[] = []
  const payloads: Buffer[] = []
  const times: number[] = []
  const startedCpu = process.cpuUsage()
  const started = performance.now()
  let nextPublish = started + PUBLISH_MS
  let nextCheckpoint = started + checkpointEveryS * 1000
  let nextProgress = started + PROGRESS_MS
  let lastProgress = { at: started, readings: 0 }
  hourStartedAt = started
  let nextHourS = header.startS + 3600
  for await (const lines of batches) {
    if (run.lastT >= replayUntilS) break
    const t0 = performance.now()
    let n = 0
    for (const line of lines) {
      const message = decodeRecordLine(line, 0)
      if (message.kind !== 'up') {
        run.other++
        continue
      }
      topics[n] = deviceTopic(message.site, message.deviceId, 'up')
      payloads[n] = message.payload
      times[n] = message.t * 1000
      n++
    }
    const t1 = performance.now()
    for (let k = 0; k < n; k++) {
      pipeline.ingest(topics[k]!, payloads[k]!, times[k]!)
      // A clock read every 64 messages is enough for a 200 ms timer and costs nothing measurable.
      if ((k & 63) === 63 && performance.now() >= nextPublish) {
        publish()
        nextPublish = performance.now() + PUBLISH_MS
        if (checkpointEveryS > 0 && performance.now() >= nextCheckpoint) {
          checkpoint()
          nextCheckpoint = performance.now() + checkpointEveryS * 1000
        }
      }
    }
    const t2 = performance.now()
    run.readMs += t1 - t0
    run.pipelineMs += t2 - t1
    run.uplinks += n
    if (n > 0) run.lastT = times[n - 1]! / 1000
    // Batches are a few hundred messages, so hours are cut to within a fraction of a second.
    if (run.lastT >= nextHourS) {
      closeHour(t2)
      nextHourS += 3600
    }
    if (t2 >= nextProgress) {
      nextProgress = t2 + PROGRESS_MS
      sampleMemory()
      const readings = readingsSoFar()
      const recentPerS = (readings - lastProgress.readings) / ((t2 - lastProgress.at) / 1000)
      lastProgress = { at: t2, readings }
      log(
        `replay: +${((run.lastT - header.startS) / 3600).toFixed(2)} h simulated, ${run.uplinks} packs, ${readings} readings, ` +
          `${Math.round(readings / ((t2 - started) / 1000))} readings/s (last 30 s: ${Math.round(recentPerS)}), ` +
          `rss ${Math.round(process.memoryUsage.rss() / MB)} MB, load ${loadavg()[0]!.toFixed(2)}`,
      )
    }
  }
  publish()
  run.wallMs = performance.now() - started
  if (livePublisher) {
    livePublisher.stop()
    run.liveFigures = livePublisher.stats.scopesSent
    run.liveBatches = livePublisher.stats.batches
    run.liveBytes = livePublisher.stats.bytes
  }
  if (readingsSoFar() > hourReadings) closeHour(performance.now())
  gcObserver.disconnect()
  const cpu = process.cpuUsage(startedCpu)
  run.cpuMs = (cpu.user + cpu.system) / 1000
  sampleMemory()
  // The process's high-water mark, between samples too (kilobytes on Linux).
  run.peakRssBytes = Math.max(run.peakRssBytes, process.resourceUsage().maxRSS * 1024)
  // What the pipeline retains after a day: run with --expose-gc (the package script does).
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) {
    gc()
    run.endHeapAfterGcBytes = process.memoryUsage().heapUsed
  }
  // Typed arrays (bucket history) live outside the heap.
  run.endExternalBytes = process.memoryUsage().external
  return run
}

/** The heap in use after a full GC (MB; undefined without --expose-gc), and the day's heap snapshot if asked. */
function dayEndHeap(day: number): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) return undefined
  gc()
  const heapUsed = process.memoryUsage().heapUsed
  if (values['heap-snapshots']) {
    mkdirSync(values['heap-snapshots'], { recursive: true })
    writeHeapSnapshot(join(values['heap-snapshots'], `day-${day}.heapsnapshot`))
  }
  return Math.round(heapUsed / MB)
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
