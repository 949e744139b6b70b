import type { HistoryPoint, RefusalReason } from './point.ts'

/**
 * The interface the processor writes history through. Two implementations pass one shared suite
 * (`test/sink-suite.ts`, STYLE.md habit 5): `HistoryWriter` (InfluxDB, durable) and
 * `MemoryHistoryWriter` (an array, for other packages' tests).
 */
export interface HistorySink {
  /** Opens what the sink needs (for the writer: its directory, replaying segments left by an earlier run). */
  start(): Promise<void>
  /** Stops taking points and puts away what is queued. Safe to call twice; the second call waits for the first. */
  stop(): Promise<void>
  /**
   * Queues points, in order. Never throws for bad points: they are refused and counted by reason.
   * Throws only when the sink is not running (a lifecycle bug in the caller, not a data problem).
   */
  write(points: readonly HistoryPoint[]): void
  /** Resolves true once every queued point is written (or refused), false if `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean>
  /** A snapshot of the counters, a fresh plain object on each call (for `/metrics`). */
  stats(): HistoryStats
}

export interface HistoryStats {
  /** Points queued by `write` (refused points are not accepted). */
  accepted: number
  /** Points the server acknowledged (2xx). */
  written: number
  /** Points refused, by reason: at `write` (bad values, full disk) or by the server for good (dead-lettered). */
  refused: Record<RefusalReason, number>
  /** Points waiting in memory. */
  queuedMemory: number
  /** Points waiting in segment files. */
  queuedDisk: number
  /** Bytes of segment files on disk now. */
  diskBytes: number
  /** Requests that failed and will be (or were) tried again. */
  retries: number
  /** The last failure, e.g. `503: Service Unavailable` or `ECONNREFUSED: …`; null before any. */
  lastError: string | null
  /** False while the server does not take writes (unreachable, overloaded, or refusing the token/bucket). */
  healthy: boolean
  /** Why not healthy; null when healthy. */
  unhealthyReason: string | null
}
