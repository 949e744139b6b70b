import type { Logger } from 'pino'
import { DeadLetter } from './dead-letter.ts'
import { InfluxLineSender, type LineSender } from './influx-sender.ts'
import { encodeLine } from './line-protocol.ts'
import { type HistoryWriterOptions, type ResolvedOptions, resolveOptions } from './options.ts'
import { emptyRefusals, type HistoryPoint, type RefusalReason } from './point.ts'
import { retryDelay, type SendOutcome } from './retry-policy.ts'
import type { HistorySink, HistoryStats } from './sink.ts'
import { type Batch, Spool } from './spool.ts'

/**
 * After this many lines in a row refused one by one with no success between, the server is taken
 * to refuse everything (a field type conflict with older data, a proxy answering 400): the writer
 * stops dead-lettering, keeps the data, reports itself unhealthy and backs off until a person acts.
 */
const MAX_CONSECUTIVE_REFUSALS = 100
/** A refusal at `write` is logged at most this often per reason (the counters carry the rest). */
const REFUSAL_LOG_INTERVAL_MS = 10_000

type State = 'new' | 'running' | 'stopping' | 'stopped'

/**
 * The InfluxDB writer: `write()` queues encoded lines in the spool (memory while the server is
 * healthy and there is room, segment files otherwise); one sender loop sends the head of the queue,
 * one request at a time, and settles lines only on the server's answer. See spool.ts for the
 * durability argument and README.md for the whole picture.
 */
export class HistoryWriter implements HistorySink {
  private readonly options: ResolvedOptions
  private readonly log: Logger
  private readonly spool: Spool
  private readonly sender: LineSender
  private readonly deadLetter: DeadLetter
  private state: State = 'new'
  private startPromise: Promise<void> | null = null
  private stopPromise: Promise<void> | null = null
  private loopDone: Promise<void> = Promise.resolve()
  private sealTimer: NodeJS.Timeout | null = null

  // Counters (stats()).
  private accepted = 0
  private written = 0
  private readonly refused = emptyRefusals()
  private retries = 0
  private lastError: string | null = null
  private healthy = true
  private unhealthyReason: string | null = null

  // Sender state.
  private attempt = 0
  private batchLines: number
  private batchChars: number
  /** Bisection after a 400/422: lines per request until the sender has passed `splitEnd` of `splitSegment`. */
  private splitLimit = 0
  private splitEnd = 0
  private splitBatch: Batch['segment'] | null = null
  private consecutiveRefusals = 0
  private stopDeadline = 0

  // Wake-ups: one pending resolver each, so the loop allocates per batch, never per point.
  private wakeWork: (() => void) | null = null
  private wakeSleep: (() => void) | null = null
  private sleepTimer: NodeJS.Timeout | null = null
  private drainWaiters: { resolve: (done: boolean) => void; timer: NodeJS.Timeout }[] = []
  private readonly lastRefusalLog = new Map<RefusalReason, number>()
  private readonly scratch: string[] = []

  /** `sender` replaces the HTTP transport in unit tests; production code passes only options. */
  constructor(options: HistoryWriterOptions, sender?: LineSender) {
    this.options = resolveOptions(options)
    this.log = this.options.logger.child({ component: 'history' })
    this.batchLines = this.options.batchSize
    this.batchChars = this.options.maxBatchBytes
    this.spool = new Spool({
      directory: this.options.directory,
      segmentMaxPoints: this.options.segmentMaxPoints,
      maxDiskBytes: this.options.maxDiskBytes,
      logger: this.log,
      now: this.options.now,
    })
    this.sender =
      sender ??
      new InfluxLineSender({
        url: this.options.url,
        token: this.options.token,
        org: this.options.org,
        bucket: this.options.bucket,
        requestTimeoutMs: this.options.requestTimeoutMs,
        gzipThreshold: this.options.gzipThreshold,
        now: this.options.now,
      })
    this.deadLetter = new DeadLetter(this.options.directory, this.options.deadLetterMaxBytes)
  }

  start(): Promise<void> {
    if (this.startPromise) return this.startPromise
    if (this.state !== 'new') return Promise.reject(new Error('history writer: cannot start after stop'))
    this.startPromise = (async () => {
      const restored = await this.spool.restore()
      this.state = 'running'
      if (restored.points > 0) this.log.info(restored, 'segment files from an earlier run will be sent first')
      const every = Math.max(1, Math.floor(this.options.segmentMaxAgeMs / 2))
      this.sealTimer = setInterval(() => this.sealOldTail(), every)
      this.sealTimer.unref()
      this.loopDone = this.run()
    })()
    return this.startPromise
  }

  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise
    this.stopPromise = (async () => {
      if (this.startPromise) await this.startPromise.catch(() => {})
      if (this.state !== 'running') {
        this.state = 'stopped'
        return
      }
      this.state = 'stopping'
      this.stopDeadline = this.options.now() + this.options.stopTimeoutMs
      this.wake()
      await this.loopDone
      if (this.sealTimer) clearInterval(this.sealTimer)
      this.spool.close()
      this.deadLetter.close()
      this.state = 'stopped'
      this.settleDrainWaiters()
      this.log.info(
        { written: this.written, queuedDisk: this.spool.diskPoints, diskBytes: this.spool.diskBytes },
        'history writer stopped',
      )
    })()
    return this.stopPromise
  }

  write(points: readonly HistoryPoint[]): void {
    if (this.state !== 'running') throw new Error(`history writer: write while ${this.state}`)
    const lines = this.scratch
    lines.length = 0
    for (let i = 0; i < points.length; i++) {
      const encoded = encodeLine(points[i]!)
      if (isRefusal(encoded)) this.refuse(encoded, 1)
      else lines.push(encoded)
    }
    const n = lines.length
    if (n === 0) return
    // Memory only while healthy, with room, and not behind an open segment file (which would
    // make the tail flip between media on every call).
    const room =
      this.healthy && !this.spool.tailIsOpenFile
        ? Math.max(0, this.options.maxMemoryPoints - this.spool.memoryPoints)
        : 0
    const inMemory = Math.min(room, n)
    if (inMemory > 0) this.spool.appendMemory(lines, 0, inMemory)
    let done = inMemory
    if (done < n) {
      const result = this.spool.appendDisk(lines, done, n)
      done += result.appended
      if (result.failure === 'spill_failed') {
        this.log.error({ err: result.error }, 'could not append to a segment file')
        // Memory above its bound is not allowed; what does not fit is refused and counted.
        const fit = Math.min(n - done, Math.max(0, this.options.maxMemoryPoints - this.spool.memoryPoints))
        if (fit > 0) this.spool.appendMemory(lines, done, done + fit)
        done += fit
      }
      if (done < n) this.refuse(result.failure ?? 'queue_full', n - done)
    }
    this.accepted += done
    lines.length = 0
    this.wake()
  }

  drain(timeoutMs: number): Promise<boolean> {
    if (this.spool.isEmpty()) return Promise.resolve(true)
    if (this.state !== 'running') return Promise.resolve(false)
    return new Promise((resolve) => {
      const waiter = {
        resolve,
        timer: setTimeout(() => {
          this.drainWaiters = this.drainWaiters.filter((w) => w !== waiter)
          resolve(this.spool.isEmpty())
        }, timeoutMs),
      }
      this.drainWaiters.push(waiter)
    })
  }

  stats(): HistoryStats {
    return {
      accepted: this.accepted,
      written: this.written,
      refused: { ...this.refused },
      queuedMemory: this.spool.memoryPoints,
      queuedDisk: this.spool.diskPoints,
      diskBytes: this.spool.diskBytes,
      retries: this.retries,
      lastError: this.lastError,
      healthy: this.healthy,
      unhealthyReason: this.unhealthyReason,
    }
  }

  /** The sender loop: the only code that sends, and the only caller of `spool.settle`. */
  private async run(): Promise<void> {
    while (this.keepSending()) {
      let batch: Batch | null
      try {
        batch = await this.spool.peek(this.currentLineLimit(), this.batchChars)
      } catch (error) {
        this.log.error({ err: error }, 'could not read the head segment; retrying')
        await this.sleep(this.options.maxRetryDelayMs)
        continue
      }
      if (batch === null) {
        this.settleDrainWaiters()
        if (this.state !== 'running') break
        await this.waitForWork()
        continue
      }
      const outcome = await this.sender.send(batch.lines.join('\n'))
      let delay = 0
      try {
        delay = this.apply(batch, outcome)
      } catch (error) {
        // A failed cursor write or unlink: nothing was settled past the failure; try again later.
        this.log.error({ err: error }, 'could not record progress on disk; retrying')
        delay = this.options.maxRetryDelayMs
      }
      if (delay > 0) await this.sleep(delay)
    }
  }

  private keepSending(): boolean {
    if (this.state === 'running') return true
    // Stopping: keep delivering while the server takes writes and the deadline allows; the rest
    // goes to disk in stop() and is sent by the next run.
    return this.state === 'stopping' && this.healthy && this.options.now() < this.stopDeadline
  }

  /** Applies a server answer to the queue; returns how long to wait before the next request. */
  private apply(batch: Batch, outcome: SendOutcome): number {
    const n = batch.lines.length
    switch (outcome.kind) {
      case 'ok': {
        this.spool.settle(batch, n)
        this.written += n
        this.attempt = 0
        this.consecutiveRefusals = 0
        this.setHealthy()
        if (this.splitBatch !== null) {
          if (batch.segment !== this.splitBatch || batch.start + n >= this.splitEnd) this.splitBatch = null
          else this.splitLimit = Math.min(this.splitLimit * 2, this.batchLines)
        }
        return 0
      }
      case 'refused': {
        this.setHealthy()
        if (n > 1) {
          // Bisect: the next requests carry half as many lines, growing again after successes,
          // until the sender is past the lines of this batch.
          this.splitLimit = Math.ceil(n / 2)
          if (this.splitBatch !== batch.segment || this.splitEnd < batch.start + n) this.splitEnd = batch.start + n
          this.splitBatch = batch.segment
          return 0
        }
        if (this.consecutiveRefusals >= MAX_CONSECUTIVE_REFUSALS) {
          return this.failed({
            kind: 'retry',
            status: outcome.status,
            retryAfterMs: null,
            config: true,
            message: `server refuses every line (${MAX_CONSECUTIVE_REFUSALS} in a row): ${outcome.message}`,
          })
        }
        this.consecutiveRefusals++
        this.deadLetterLine(batch, outcome.status, outcome.reason, outcome.message)
        return 0
      }
      case 'too_large': {
        this.setHealthy()
        if (n > 1) {
          this.batchLines = Math.max(1, Math.floor(n / 2))
          this.batchChars = Math.max(1, Math.floor(batch.chars / 2))
          this.log.warn({ lines: this.batchLines, chars: this.batchChars }, 'server answered 413; batches halved')
          return 0
        }
        this.deadLetterLine(batch, outcome.status, 'too_large', outcome.message)
        return 0
      }
      case 'retry':
        return this.failed(outcome)
    }
  }

  private failed(outcome: Extract<SendOutcome, { kind: 'retry' }>): number {
    this.retries++
    const status = outcome.status === null ? '' : `${outcome.status}: `
    this.lastError = `${status}${outcome.message}`
    const reason = outcome.config
      ? `server refuses the writer's configuration (token, org or bucket): ${this.lastError}`
      : outcome.status === null
        ? `unreachable: ${this.lastError}`
        : `server error: ${this.lastError}`
    if (this.healthy || this.unhealthyReason !== reason) {
      this.log[outcome.config ? 'error' : 'warn']({ reason }, 'history writes failing; data kept on disk')
    }
    this.healthy = false
    this.unhealthyReason = reason
    // Put everything queued in memory on disk while the server is away: it survives a crash and
    // frees memory. Bisection offsets refer to memory positions, so they restart.
    try {
      if (this.spool.spillMemory() > 0) this.splitBatch = null
    } catch (error) {
      this.log.error({ err: error }, 'spill failed; queue stays in memory')
    }
    const delay = retryDelay(outcome, this.attempt++, this.options, this.options.random)
    this.log.debug({ delayMs: delay, attempt: this.attempt, status: outcome.status }, 'retrying')
    return delay
  }

  private deadLetterLine(batch: Batch, status: number, reason: RefusalReason, message: string): void {
    const line = batch.lines[0]!
    this.deadLetter.add({ at: this.options.now(), status, reason, message, line })
    this.spool.settle(batch, 1)
    this.refused[reason]++
    this.log.warn({ status, reason, message, line: line.slice(0, 200) }, 'point refused by the server; dead-lettered')
  }

  private setHealthy(): void {
    if (!this.healthy) this.log.info({ queuedDisk: this.spool.diskPoints }, 'history writes succeed again')
    this.healthy = true
    this.unhealthyReason = null
  }

  private currentLineLimit(): number {
    return this.splitBatch === null ? this.batchLines : Math.min(this.splitLimit, this.batchLines)
  }

  private refuse(reason: RefusalReason, count: number): void {
    this.refused[reason] += count
    const now = this.options.now()
    const last = this.lastRefusalLog.get(reason)
    if (last === undefined || now - last >= REFUSAL_LOG_INTERVAL_MS) {
      this.lastRefusalLog.set(reason, now)
      this.log.warn({ reason, refusedSoFar: this.refused[reason] }, 'points refused')
    }
  }

  private sealOldTail(): void {
    try {
      this.spool.sealTailIfOlderThan(this.options.segmentMaxAgeMs)
    } catch (error) {
      this.log.error({ err: error }, 'could not seal a segment file')
    }
  }

  private wake(): void {
    const work = this.wakeWork
    this.wakeWork = null
    work?.()
    if (this.state === 'stopping') {
      const sleep = this.wakeSleep
      this.wakeSleep = null
      if (this.sleepTimer) clearTimeout(this.sleepTimer)
      sleep?.()
    }
  }

  private waitForWork(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeWork = resolve
    })
  }

  /** A backoff that `stop()` cuts short. */
  private sleep(ms: number): Promise<void> {
    if (this.state !== 'running') return Promise.resolve()
    return new Promise((resolve) => {
      this.wakeSleep = resolve
      this.sleepTimer = setTimeout(() => {
        this.wakeSleep = null
        resolve()
      }, ms)
    })
  }

  private settleDrainWaiters(): void {
    if (this.drainWaiters.length === 0) return
    const empty = this.spool.isEmpty()
    if (!empty && this.state === 'running') return
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const waiter of waiters) {
      clearTimeout(waiter.timer)
      waiter.resolve(empty)
    }
  }
}

function isRefusal(encoded: string): encoded is RefusalReason {
  // A line always contains a space before its timestamp; a refusal reason never does.
  return encoded.indexOf(' ') < 0
}
