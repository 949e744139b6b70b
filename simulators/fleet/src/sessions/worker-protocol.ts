import type { SessionEngineOptions } from './engine.ts'
import type { SessionStats } from './types.ts'

/** Engine options that cross the IPC channel: plain data, so no functions. */
export type WorkerEngineOptions = Omit<SessionEngineOptions, 'payload' | 'now' | 'random'> & {
  /**
   * A module (path or file URL) exporting `payload`, a PayloadFactory, for uplinks other than
   * the default four-record pack (the plant simulator's physics, for instance).
   */
  payloadModule?: string
}

export type ToWorker =
  | { type: 'start'; options: WorkerEngineOptions; reportIntervalMs: number; maxLifetimeMs: number }
  /** Every worker has loaded: open the sessions now, all workers at once. */
  | { type: 'begin' }
  /** `intervalMs`: a new publish interval from now on (SessionEngine.setPublishing). */
  | { type: 'publishing'; on: boolean; intervalMs?: number }
  | { type: 'report'; seq: number }
  | { type: 'stop'; drainMs: number; closeMs: number }

export interface WorkerProcessInfo {
  pid: number
  rssBytes: number
  cpuUserUs: number
  cpuSystemUs: number
}

export interface WorkerReport {
  /** Cumulative counters of the worker's engine. */
  stats: SessionStats
  /** HdrHistograms of what was recorded since the previous report, compressed base64. */
  latency: string
  connectLatency: string
  process: WorkerProcessInfo
}

export type FromWorker =
  | { type: 'started' }
  | ({ type: 'report'; seq: number | null } & WorkerReport)
  | ({ type: 'stopped' } & WorkerReport)
  | { type: 'failed'; message: string }
