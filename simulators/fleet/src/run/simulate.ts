// `plantwatt simulate` and `plantwatt replay` as functions: plan the workers, run them as one
// (coordinator.ts), then put the parts back together (recording, truth) and sum up the run.

import { rename, rm, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import type { PlantModel } from '@plantwatt/contract'
import { type FaultOptions, partitionFleet, type TruthJson } from '../model/index.ts'
import {
  mergeRecordings,
  openRecordingLines,
  RECORDING_FORMAT,
  RECORDING_VERSION,
  recordingSites,
} from '../recording/index.ts'
import { fleetDevicesOf } from '../sessions/devices.ts'
import type { BrokerAddress } from '../sessions/types.ts'
import { type Speed, simulatedStartS } from './clock.ts'
import { type FleetWorkersResult, type RunProgress, runFleetWorkers } from './coordinator.ts'
import { plantSubset } from './plant-subset.ts'
import type { ReplayJob, SessionsSpec, SimulateJob } from './protocol.ts'
import { type RunSummary, summarize } from './summary.ts'
import { mergeTruths } from './truth-merge.ts'

/** Sessions per worker process by default: well under the 20,000 descriptors one may hold. */
const SESSIONS_PER_WORKER = 10_000
/** Sessions per loopback source address by default (one has about 28,000 ephemeral ports). */
const SESSIONS_PER_SOURCE_ADDRESS = 10_000

export interface FleetConnection {
  brokers: BrokerAddress[]
  deviceSecret: string
  /** Source addresses to bind; default 127.0.0.2… (one per 10,000 sessions) when the brokers are on loopback. */
  localAddresses?: string[]
  /** New connections per second over the whole fleet. Default 2000. */
  connectRatePerS?: number
  /** Connections waiting for CONNACK over the whole fleet. Default 400. */
  maxConnectsInFlight?: number
  /** Default 300: NB-IoT devices keep long keep-alives. */
  keepaliveS?: number
}

export interface CommonRunOptions {
  speed: Speed
  /** Where to send; null runs without a broker (simulate: only records). */
  connection: FleetConnection | null
  /** Default: one per 10,000 devices. */
  workers?: number
  onProgress?: (progress: RunProgress) => void
  signal?: AbortSignal
}

export interface SimulateOptions extends CommonRunOptions {
  plant: PlantModel
  /** Simulate only about this many devices of the plant (whole lines, see plantSubset). */
  devices?: number
  /** Default 1. */
  seed?: number
  /** Simulated seconds to run; null runs until aborted (only at speed ≤ 1). */
  durationS: number | null
  /** Simulated start in epoch seconds; default: so that no reading lies in the future (simulatedStartS). */
  startS?: number
  /** Default 1. */
  reportIntervalS?: number
  faults?: FaultOptions
  /** Write every message as sent to this recording (gzip NDJSON). */
  record?: string
  /** Write the ground truth (JSON) here. */
  truth?: string
  /** Free-form, into the recording's header. */
  note?: string
}

export interface ReplayOptions extends CommonRunOptions {
  file: string
}

export async function simulate(options: SimulateOptions): Promise<RunSummary> {
  const plant = options.devices === undefined ? options.plant : plantSubset(options.plant, options.devices)
  const fleet = fleetDevicesOf(plant)
  if (options.durationS === null && options.speed !== 'max' && options.speed > 1) {
    throw new RangeError('a run faster than real time needs a duration, so that it can start in the past')
  }
  if (options.durationS === null && options.speed === 'max') throw new RangeError('--speed max needs a duration')
  const workerCount = chooseWorkers(options.workers, fleet.length)
  const parts = partitionFleet(plant, workerCount).filter((part) => part.size > 0)
  const sites: Record<string, string[]> = {}
  for (const device of fleet) {
    sites[device.site] ??= []
    sites[device.site]!.push(device.id)
  }
  const seed = options.seed ?? 1
  const reportIntervalS = options.reportIntervalS ?? 1
  const recordParts = options.record
    ? parts.map((_, k) => (parts.length === 1 ? `${options.record}.partial` : `${options.record}.part-${k}`))
    : []
  const plantJson = JSON.stringify(plant)
  const sessions = sessionsSpec(options.connection, fleet.length, parts.length)
  const jobs: SimulateJob[] = parts.map((part, k) => ({
    kind: 'simulate',
    plantJson,
    devices: [...part],
    seed,
    reportIntervalS,
    faults: options.faults ?? {},
    durationS: options.durationS,
    speed: options.speed,
    sessions,
    recordPath: recordParts[k] ?? null,
    recordHeader: options.record
      ? {
          format: RECORDING_FORMAT,
          version: RECORDING_VERSION,
          createdAt: '',
          startS: 0,
          devices: fleet.length,
          seed,
          note: options.note,
          sites,
        }
      : null,
    truth: options.truth !== undefined,
  }))

  let result: FleetWorkersResult
  try {
    result = await runFleetWorkers({
      jobs,
      speed: options.speed,
      startS: (nowMs) => options.startS ?? simulatedStartS(nowMs / 1000, options.durationS ?? 0, options.speed),
      lookaheadS: Math.max(10, 10 * reportIntervalS),
      onProgress: options.onProgress,
      signal: options.signal,
    })
  } catch (error) {
    await Promise.all(recordParts.map((path) => rm(path, { force: true })))
    throw error
  }

  let recorded: number | null = null
  if (options.record) {
    if (recordParts.length === 1) {
      await rename(recordParts[0]!, options.record)
      recorded = result.progress.recorded
    } else {
      const { header } = await openRecordingLines(recordParts[0]!)
      recorded = await mergeRecordings(recordParts, options.record, { ...header, createdAt: new Date().toISOString() })
      await Promise.all(recordParts.map((path) => rm(path, { force: true })))
    }
  }
  if (options.truth) {
    const truths = result.truths.filter((truth): truth is TruthJson => truth !== null)
    const truth = truths.length === 1 ? truths[0]! : mergeTruths(plant, truths, parts)
    await writeFile(options.truth, `${JSON.stringify(truth)}\n`)
  }
  return summarize('simulate', result, {
    speed: options.speed,
    seed,
    reportIntervalS,
    faults: options.faults ?? {},
    record: options.record ?? null,
    recorded,
    truth: options.truth ?? null,
  })
}

export async function replay(options: ReplayOptions): Promise<RunSummary> {
  const { header, lines } = await openRecordingLines(options.file)
  await lines.return(undefined)
  // The devices actually in the file (issue 12 finding 17): a header without `sites` only claims a
  // count, so the lines are read once instead of trusting it (the workers read them anyway).
  const sites = header.sites ?? (await recordingSites(options.file))
  const devices = Object.values(sites).reduce((n, ids) => n + ids.length, 0)
  const workerCount = chooseWorkers(options.workers, devices, availableParallelism())
  const sessions = sessionsSpec(options.connection, devices, workerCount)
  const jobs: ReplayJob[] = Array.from({ length: workerCount }, (_, part) => ({
    kind: 'replay',
    file: options.file,
    part,
    parts: workerCount,
    speed: options.speed,
    sessions,
  }))
  const result = await runFleetWorkers({
    jobs,
    speed: options.speed,
    startS: () => header.startS,
    onProgress: options.onProgress,
    signal: options.signal,
  })
  return summarize('replay', result, {
    speed: options.speed,
    seed: header.seed ?? null,
    reportIntervalS: null,
    faults: null,
    record: options.file,
    recorded: null,
    truth: null,
  })
}

/**
 * Worker processes for `devices` devices: one per 10,000 unless asked, never more than the devices
 * nor `cap`. A replay caps them at the cores (issue 12 finding 17: its device count comes from a
 * file, and a process beyond the cores only adds memory and contention); a simulation's fleet comes
 * from a validated plant model and keeps one worker per 10,000 sessions (descriptors).
 */
function chooseWorkers(requested: number | undefined, devices: number, cap = Number.POSITIVE_INFINITY): number {
  const count = requested ?? Math.ceil(devices / SESSIONS_PER_WORKER)
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`workers must be a positive integer, got ${count}`)
  return Math.max(1, Math.min(count, devices, cap))
}

/** The sessions of one of `workers` workers: the fleet's connect rate and window are shared out. */
function sessionsSpec(connection: FleetConnection | null, sessions: number, workers: number): SessionsSpec | null {
  if (connection === null) return null
  const loopback = connection.brokers.every((broker) => /^(127\.|localhost$|::1$)/.test(broker.host))
  const addresses =
    loopback && sessions > SESSIONS_PER_SOURCE_ADDRESS ? Math.ceil(sessions / SESSIONS_PER_SOURCE_ADDRESS) : 0
  return {
    brokers: connection.brokers,
    deviceSecret: connection.deviceSecret,
    localAddresses: connection.localAddresses ?? Array.from({ length: addresses }, (_, k) => `127.0.0.${k + 2}`),
    connectRatePerS: (connection.connectRatePerS ?? 2000) / workers,
    maxConnectsInFlight: Math.max(1, Math.floor((connection.maxConnectsInFlight ?? 400) / workers)),
    keepaliveS: connection.keepaliveS ?? 300,
  }
}
