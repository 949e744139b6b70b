// `plantwatt simulate` and `plantwatt replay`: the fleet simulator's runs (simulators/fleet),
// with a live progress line on a terminal and a JSON summary on stdout at the end.

import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { PlantModel } from '@plantwatt/contract'
import {
  FAULT_PRESETS,
  type FaultOptions,
  type FleetConnection,
  progressLine,
  type RunProgress,
  type RunSummary,
  replay,
  type Speed,
  simulate,
} from '@plantwatt/fleet'
import { loadDeviceSecret } from '@plantwatt/runtime'
import { createLogUpdate } from 'log-update'
import { secretFromEnv } from './option-parsers.ts'

export interface FleetCommandOptions {
  speed: Speed
  /** Empty: no broker (simulate only records). */
  broker: { host: string; port: number }[]
  dataDir: string
  workers?: number
  connectRate?: number
}

export interface SimulateCommandOptions extends FleetCommandOptions {
  plant: PlantModel
  devices?: number
  seed: number
  duration?: number
  start?: number
  interval: number
  faults: string
  record?: string
  truth?: string
}

/** Without a duration, a run faster than real time covers the last hour. */
const DEFAULT_FAST_DURATION_S = 3600
/** Without a terminal, a progress line this often (into logs). */
const PLAIN_PROGRESS_MS = 10_000

export async function simulateCommand(options: SimulateCommandOptions): Promise<void> {
  const faults = await loadFaults(options.faults)
  const fast = options.speed === 'max' || options.speed > 1
  const durationS = options.duration ?? (fast ? DEFAULT_FAST_DURATION_S : null)
  await runWithProgress(options.speed, async (onProgress, signal) =>
    simulate({
      plant: options.plant,
      devices: options.devices,
      seed: options.seed,
      speed: options.speed,
      durationS,
      startS: options.start,
      reportIntervalS: options.interval,
      faults,
      connection: await connection(options),
      workers: options.workers,
      record: options.record ? resolve(options.record) : undefined,
      truth: options.truth ? resolve(options.truth) : undefined,
      note: `plantwatt simulate, faults ${options.faults}`,
      onProgress,
      signal,
    }),
  )
}

export async function replayCommand(file: string, options: FleetCommandOptions): Promise<void> {
  await runWithProgress(options.speed, async (onProgress, signal) =>
    replay({
      file: resolve(file),
      speed: options.speed,
      connection: await connection(options),
      workers: options.workers,
      onProgress,
      signal,
    }),
  )
}

async function connection(options: FleetCommandOptions): Promise<FleetConnection | null> {
  if (options.broker.length === 0) return null
  return {
    brokers: options.broker,
    // The broker's data directory holds the secret the devices' passwords derive from.
    deviceSecret: await loadDeviceSecret(resolve(options.dataDir), secretFromEnv('PLANTWATT_DEVICE_SECRET')),
    connectRatePerS: options.connectRate,
  }
}

async function loadFaults(value: string): Promise<FaultOptions> {
  const preset = FAULT_PRESETS[value]
  if (preset) return preset
  try {
    return JSON.parse(await readFile(resolve(value), 'utf8')) as FaultOptions
  } catch (error) {
    throw new Error(
      `--faults ${value}: neither a preset (${Object.keys(FAULT_PRESETS).join(', ')}) nor a readable JSON file: ${(error as Error).message}`,
    )
  }
}

/**
 * Runs with a live progress line on stderr when it is a terminal (a line every 10 s when it is
 * not), Ctrl-C ending the run early (a second one exits at once), and prints the summary.
 */
async function runWithProgress(
  speed: Speed,
  run: (onProgress: (progress: RunProgress) => void, signal: AbortSignal) => Promise<RunSummary>,
): Promise<void> {
  const controller = new AbortController()
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130)
    process.stderr.write('\nplantwatt: ending the run (Ctrl-C again to quit at once)\n')
    controller.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const terminal = process.stderr.isTTY === true
  const status = terminal ? createLogUpdate(process.stderr) : undefined
  let lastPlainAt = 0
  const onProgress = (progress: RunProgress) => {
    const line = progressLine(progress, speed)
    if (status) status(line)
    else if (Date.now() - lastPlainAt >= PLAIN_PROGRESS_MS || progress.phase === 'done') {
      lastPlainAt = Date.now()
      process.stderr.write(`${line}\n`)
    }
  }
  try {
    const summary = await run(onProgress, controller.signal)
    status?.done()
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
