// The demo's history (issue 17): before `plantwatt up --demo` starts its live devices, the last two
// days of the demo plant run through the real ingest path at full speed, so that a newcomer sees
// days of charts, idle equipment with learned thresholds, idle alerts and setpoint moves at once
// instead of after an hour.
//
// What the devices would have sent comes from the simulator's own model (PlantSimulation: the same
// physics, idle episodes, PV and process variables as the live fleet, with the live fleet's faults,
// which are none). Each message is appended to the ingest journal, exactly where the broker puts an
// acknowledged uplink, so the processor takes it as it takes any reading: counted, accounted,
// detected, tuned, its buckets written to the history store. The journal stamps each record with
// its real time of receipt, as for a replay; two days old is well within `maxAgeS` (7 days), so no
// `--accept-old` is needed. Setpoint commands the tuners send meanwhile reach the simulated devices
// (which apply and acknowledge them) through the bus, as live devices get them from the broker.
//
// Speed: a device's readings every BACKFILL_INTERVAL_S during the backfill (docs/simulator.md says
// why that interval), then the simulation switches to the live interval at a tick boundary, catches
// up to the wall clock, and is handed to the live fleet, which continues it: no gap, no overlap,
// counters that keep counting.
//
// Restart: the processor's restored state says where the stored history ends (each site's clock,
// the newest reading accepted). Only the time since then is backfilled, and the devices' counters
// continue from the values the processor last accepted, so nothing is counted twice and no counter
// appears reset.

import { type Bus, INTERNAL_PREFIX } from '@plantwatt/bus'
import { deviceTopic, type PlantModel, parseDeviceTopic, parseSetpointCommand } from '@plantwatt/contract'
import { DEMO_INTERVAL_S, type OutgoingMessage, PlantSimulation } from '@plantwatt/fleet'
import type { Processor } from '@plantwatt/processor'
import type { Logger } from '@plantwatt/runtime'

/** Hours of history the demo shows at once (the issue: two days). */
export const DEMO_HISTORY_HOURS = 48
/**
 * Seconds between a device's readings during the backfill: 5 minutes, a common NB-IoT reporting
 * interval. Two days of 300 devices every 5 s (the live interval) would be 10 million messages; at
 * 300 s they are 180,000 (320,000 readings), and the backfill's cost is then mostly what grows with
 * simulated time, not with readings (closed buckets, learning, the history store): measured on this
 * 2-core machine, 21 s of CPU at 300 s against 29 s at 120 s (docs/benchmarks.md). Still: idle
 * alerts come within one interval of `afterS`, learned thresholds need 60 readings (5 hours here),
 * offline (900 s) never fires, power readings stay within 900 s of each other (§7), and the
 * energy counters make every Wh exact whatever the interval.
 */
export const BACKFILL_INTERVAL_S = 300
/** Simulated seconds per step: commands a tuner sends in one reach its device before the next. */
const CHUNK_S = 300
/**
 * The processor's publishing of changed figures meanwhile, ms (200 live): the live figures of a
 * site whose clock races through the hours are recomputed for nobody.
 */
const BACKFILL_PUBLISH_MS = 2000
const LIVE_PUBLISH_MS = 200
/** Progress lines in the log: one per tenth of the span. */
const PROGRESS_STEPS = 10
/** The seed of the live fleet: the backfill and the live devices are one simulation. */
const DEMO_SEED = 1
const BARRIER_TOPIC = `${INTERNAL_PREFIX}/demo-backfill/barrier`

/** Where a device's uplink goes before the processor sees it: the ingest journal (as the broker does). */
export interface UplinkJournal {
  append(topic: string, payload: Buffer, done: (error: Error | null) => void): void
}

export interface DemoBackfillOptions {
  plant: PlantModel
  journal: UplinkJournal
  processor: Processor
  /** The in-process bus: setpoint commands to the simulated devices come from it. */
  bus: Bus
  logger: Logger
  /** Hours of history to have (default DEMO_HISTORY_HOURS); 0: none, the devices just go live. */
  hours?: number
  intervalS?: number
  /** The live fleet's interval, which the simulation has when it is handed over. */
  liveIntervalS?: number
  seed?: number
  /** Wall clock, epoch ms. */
  now?: () => number
  /** Stops the backfill between steps (the system is shutting down). */
  signal?: AbortSignal
}

export interface DemoBackfill {
  /** Advanced to the wall clock, at the live interval: the live fleet continues it. */
  simulation: PlantSimulation
  fromMs: number
  toMs: number
  messages: number
  readings: number
  durationMs: number
}

/**
 * Runs the demo plant's missing history (up to `hours`, from the newest stored reading on) through
 * the ingest journal and returns the simulation, at the wall clock, for the live fleet; undefined
 * when aborted.
 */
export async function backfillDemo(options: DemoBackfillOptions): Promise<DemoBackfill | undefined> {
  const { plant, processor, logger, signal } = options
  const now = options.now ?? Date.now
  const intervalS = options.intervalS ?? BACKFILL_INTERVAL_S
  const liveIntervalS = options.liveIntervalS ?? DEMO_INTERVAL_S
  const startedMs = now()
  const startedCpu = process.cpuUsage()
  const hours = clampedHours(plant, options.hours ?? DEMO_HISTORY_HOURS, logger)
  const fromMs = resumeFrom(plant, processor, startedMs - hours * 3_600_000)
  const simulation = new PlantSimulation({
    plant,
    seed: options.seed ?? DEMO_SEED,
    startS: fromMs / 1000,
    reportIntervalS: intervalS,
  })
  const continued = continueCounters(simulation, processor)
  const before = { ...processor.stats }

  let commands = 0
  let barrier: (() => void) | undefined
  const unsubscribeCommands = await options.bus.subscribe('sites/+/devices/+/down', (topic, payload) => {
    const device = parseDeviceTopic(topic)
    const command = parseSetpointCommand(payload)
    if (!device || !command) return
    try {
      // Applied at the device's first sample at or after the command's time, then acknowledged.
      simulation.receiveCommand(device.deviceId, command, command.issuedAt)
      commands++
    } catch {
      // Not a device of the demo plant: nobody to answer it.
    }
  })
  const unsubscribeBarrier = await options.bus.subscribe(BARRIER_TOPIC, () => barrier?.())
  /** Resolves once every message published on the bus before it was delivered (aedes keeps order). */
  const busDrained = () =>
    new Promise<void>((resolve) => {
      barrier = resolve
      options.bus.publish(BARRIER_TOPIC, Buffer.alloc(0)).catch(() => resolve())
    })

  let messages = 0
  let refused = 0
  /** Appends the messages to the journal; resolves once the last is durable and so processed. */
  const ingest = async (batch: OutgoingMessage[]) => {
    if (batch.length === 0) return
    let last: Promise<void> | undefined
    for (const message of batch) {
      const topic = deviceTopic(message.site, message.deviceId, message.kind)
      last = new Promise<void>((resolve) =>
        options.journal.append(topic, Buffer.from(message.payload), (error) => {
          if (error) refused++
          resolve()
        }),
      )
    }
    messages += batch.length
    // The journal calls back in order, and hands each batch to the processor right after its
    // callbacks, in the same turn: once the last callback ran, every message here is processed.
    await last
  }

  processor.setPublishInterval(BACKFILL_PUBLISH_MS)
  try {
    if (fromMs < startedMs) {
      logger.info(
        { fromMs, toMs: startedMs, intervalS, countersContinued: continued },
        'demo history: backfilling the plant since the newest stored reading',
      )
    }
    // Whole coarse ticks up to the wall clock, in steps; then the live interval from the next tick.
    const boundaryS = simulation.tickStartAtOrBefore(startedMs / 1000)
    const spanS = Math.max(0, boundaryS - fromMs / 1000)
    let nextProgress = 1
    for (let tS = fromMs / 1000; tS < boundaryS; ) {
      if (signal?.aborted) return undefined
      tS = Math.min(boundaryS, tS + CHUNK_S)
      // Just before the boundary: every sample of the last tick and none of the next.
      await ingest(simulation.advanceTo(tS === boundaryS ? tS - 0.001 : tS))
      await busDrained()
      const done = (tS - fromMs / 1000) / spanS
      if (done * PROGRESS_STEPS >= nextProgress && tS < boundaryS) {
        nextProgress = Math.floor(done * PROGRESS_STEPS) + 1
        logger.info(
          {
            percent: Math.floor(done * 100),
            simulatedTo: new Date(tS * 1000).toISOString(),
            readings: processor.stats.readingsAccepted - before.readingsAccepted,
            elapsedMs: now() - startedMs,
          },
          'demo history: backfill progress',
        )
      }
    }
    simulation.setReportInterval(liveIntervalS)
    // The wall clock moved on meanwhile: catch up at the live interval until within a second.
    let toMs = Math.max(fromMs, boundaryS * 1000)
    for (let round = 0; round < 20; round++) {
      if (signal?.aborted) return undefined
      toMs = Math.max(toMs, now())
      await ingest(simulation.advanceTo(toMs / 1000))
      await busDrained()
      if (now() - toMs < 1000) break
    }
    // Durable before the devices go live: buckets in the history store, the journal released.
    await processor.checkpoint()
    const durationMs = now() - startedMs
    const cpu = process.cpuUsage(startedCpu)
    const stats = processor.stats
    const result: DemoBackfill = {
      simulation,
      fromMs,
      toMs,
      messages,
      readings: stats.readingsAccepted - before.readingsAccepted,
      durationMs,
    }
    logger.info(
      {
        fromMs,
        toMs,
        intervalS,
        messages,
        readings: result.readings,
        duplicates: stats.readingsDuplicate - before.readingsDuplicate,
        rejected: stats.readingsRejected - before.readingsRejected,
        refused,
        commands,
        durationMs,
        // The process's CPU meanwhile (the API and the timers included): on a shared machine the
        // honest figure beside the wall clock.
        cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      },
      'demo history ready',
    )
    return result
  } finally {
    processor.setPublishInterval(LIVE_PUBLISH_MS)
    await unsubscribeCommands()
    await unsubscribeBarrier()
  }
}

/** Hours of history within every site's maxAgeS (older readings would be refused `too_old`). */
function clampedHours(plant: PlantModel, hours: number, logger: Logger): number {
  let maxAgeS = Number.POSITIVE_INFINITY
  for (const site of plant.sites) maxAgeS = Math.min(maxAgeS, site.maxAgeS ?? 604_800)
  // An hour of margin: the site clock moves on while the backfill runs.
  const limit = Math.max(0, Math.floor(maxAgeS / 3600) - 1)
  if (hours <= limit) return hours
  logger.warn({ hours, limit }, 'demo history: shortened to what maxAgeS lets the processor accept')
  return limit
}

/**
 * Where the history to make starts: right after the newest reading the processor holds (a site's
 * clock), not before `floorMs`; with several sites, the earliest of them (the others' devices then
 * repeat a few readings, counted once as duplicates).
 */
function resumeFrom(plant: PlantModel, processor: Processor, floorMs: number): number {
  let fromMs = Number.POSITIVE_INFINITY
  for (const site of plant.sites) {
    const clock = processor.state.siteClockMs(site.id)
    fromMs = Math.min(fromMs, clock === null ? floorMs : Math.max(floorMs, clock + 1))
  }
  return Number.isFinite(fromMs) ? Math.round(fromMs) : Math.round(floorMs)
}

/** Devices continue the counters the processor last accepted from them; how many did. */
function continueCounters(simulation: PlantSimulation, processor: Processor): number {
  let continued = 0
  for (const [deviceId, counters] of processor.devices) {
    const energy = counters.last?.get('energy')?.[1]
    const output = counters.last?.get('output')?.[1]
    if (energy === undefined && output === undefined) continue
    try {
      simulation.continueCounters(deviceId, { energy, output })
      continued++
    } catch {
      // No longer a device of the plant.
    }
  }
  return continued
}
