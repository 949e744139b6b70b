import { encodeRecords, type ForwardedRecord } from './protocol.ts'

// The records a broker worker's journal made durable, on their way to the primary (issue 16).
// The journal commits back to back (one write and one fdatasync each, a millisecond or two), so at
// a few thousand uplinks a second a group commit holds one or two records; forwarded one message
// per commit, the IPC sends (a serialisation, a write(2) and a wake-up of the primary each) cost
// the worker more than the journal's own writes, and the primary as much again to read them
// (issue 16's profile, docs/benchmarks.md). The forwarder gathers records for at most
// `intervalMs` (or `maxRecords`) and sends them as one batch: a reading reaches the processor that
// much later, and its PUBACK, which only waits for the journal, no later at all.

export interface RecordForwarderOptions {
  /** One batch: encodeRecords' bytes of `count` records, in journal order. */
  send(bytes: Buffer, count: number): void
  /** How long the first record of a batch waits for more. */
  intervalMs: number
  /** A batch this full goes at once. */
  maxRecords: number
  /**
   * Records sent and not yet applied by the primary beyond which the worker stops taking its devices'
   * uplinks (`onPressure(true)`); it takes them again (`onPressure(false)`) once they are half this.
   */
  maxUnapplied?: number
  onPressure?(paused: boolean): void
}

export class RecordForwarder {
  readonly stats = { batches: 0, records: 0, applied: 0, pauses: 0 }
  /** True while the primary lags: the worker reads no more of its devices. */
  paused = false
  private batch: ForwardedRecord[] = []
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly options: RecordForwarderOptions) {}

  push(record: ForwardedRecord): void {
    this.batch.push(record)
    if (this.batch.length >= this.options.maxRecords) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), this.options.intervalMs)
  }

  /** Sends what is gathered now (a stopping worker, a full batch, the interval's end). */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.batch.length === 0) return
    const records = this.batch
    this.batch = []
    this.stats.batches++
    this.stats.records += records.length
    this.options.send(encodeRecords(records), records.length)
    const limit = this.options.maxUnapplied
    if (!this.paused && limit !== undefined && this.unapplied >= limit) {
      // The IPC channel queues without bound in memory when the primary does not read it: the
      // worker stops taking uplinks instead; what it acknowledged already is in its journal.
      this.paused = true
      this.stats.pauses++
      this.options.onPressure?.(true)
    }
  }

  /** Sent and not yet applied by the primary. */
  get unapplied(): number {
    return this.stats.records - this.stats.applied
  }

  /** The primary applied `count` more records (its `applied` message). */
  applied(count: number): void {
    this.stats.applied += count
    const limit = this.options.maxUnapplied
    if (this.paused && limit !== undefined && this.unapplied <= limit / 2) {
      this.paused = false
      this.options.onPressure?.(false)
    }
  }
}
