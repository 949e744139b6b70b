// What the coordinator (parent) and its fleet workers say to each other over IPC.

import type { FaultOptions, TruthJson } from '../model/index.ts'
import type { RecordingHeader } from '../recording/index.ts'
import type { WorkerProcessInfo } from '../sessions/index.ts'
import type { BrokerAddress, SessionStats } from '../sessions/types.ts'
import type { Speed } from './clock.ts'

/** How a worker's sessions reach the broker; absent when the run only records. */
export interface SessionsSpec {
  brokers: BrokerAddress[]
  deviceSecret: string
  localAddresses: string[]
  connectRatePerS: number
  maxConnectsInFlight: number
  keepaliveS: number
}

export interface SimulateJob {
  kind: 'simulate'
  /** The plant model, as JSON text (parsed once in the worker). */
  plantJson: string
  /** Devices this worker simulates and sends for (whole lines, see partitionFleet). */
  devices: string[]
  seed: number
  reportIntervalS: number
  faults: FaultOptions
  durationS: number | null
  speed: Speed
  sessions: SessionsSpec | null
  /** Where this worker writes its messages: a part file, merged by the coordinator. */
  recordPath: string | null
  recordHeader: RecordingHeader | null
  truth: boolean
}

export interface ReplayJob {
  kind: 'replay'
  file: string
  /** This worker sends for the devices whose partOf(id, parts) is `part`. */
  part: number
  parts: number
  speed: Speed
  sessions: SessionsSpec | null
}

export type Job = SimulateJob | ReplayJob

export type ToRunWorker =
  | { type: 'start'; job: Job }
  /** Open the sessions (every worker at once). */
  | { type: 'connect' }
  /** Start simulated time: at `startS` (simulate), at wall time `wallStartMs`. */
  | { type: 'begin'; startS: number; wallStartMs: number; horizonS: number }
  | { type: 'horizon'; horizonS: number }
  /** The previous report was received: the worker may send the next (one report at a time). */
  | { type: 'reportReceived' }
  /** End early (Ctrl-C): stop producing, drain, report. */
  | { type: 'finish' }

export interface RunWorkerReport {
  /** Simulated seconds reached: every message up to it has been handed to the sessions. */
  reachedS: number
  /**
   * Simulated seconds before which every message handed to connected sessions has left them
   * (acknowledged by the broker): at most reachedS. The coordinator moves the horizon of
   * `--speed max` from the slowest worker's settledS, so that what the broker receives stays within
   * the lookahead of event-time order even when a worker's sessions fall behind its simulation.
   */
  settledS: number
  /** True once the worker has produced everything it will (its sessions may still drain). */
  produced: boolean
  /**
   * At `--speed X`: simulated seconds behind the wall-clock schedule (the sessions could not
   * take the messages, or the worker could not make them in time); frozen once produced. 0 at max.
   */
  lagS: number
  /** Wall seconds simulated time stood still because the sessions' backlog was full (speed X). */
  heldWallS: number
  /** The bound on the sessions' backlog this worker keeps (see job-base.ts). */
  backlogLimit: number
  /** Messages made by the simulation and not yet due (network latency, retransmissions). */
  pendingInSimulation: number
  uplinks: number
  acks: number
  recorded: number
  commandsReceived: number
  downlinksRefused: number
  sessions: SessionStats | null
  /** HdrHistograms since the previous report, compressed base64 ('' when empty). */
  latency: string
  connectLatency: string
  process: WorkerProcessInfo
}

export type FromRunWorker =
  /** Loaded: `devices` sessions (or devices, when only recording). */
  | { type: 'ready'; devices: number; startS: number | null }
  | ({ type: 'report' } & RunWorkerReport)
  | ({ type: 'finished'; truth: TruthJson | null } & RunWorkerReport)
  | { type: 'failed'; message: string }
