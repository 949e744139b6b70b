import { readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import {
  CURSOR_FILE,
  encodeRecords,
  fsyncDirectory,
  parseSegment,
  parseSegmentFileName,
  SegmentAppender,
  segmentFileName,
  writeFileAtomic,
} from './segment-file.ts'

/**
 * The durable queue: one ordered list of segments, the head first. A segment holds its lines in
 * memory or in a segment file; the list order, not the medium, is the send order. Ids grow by one
 * per segment and are never reused, and a memory segment keeps its id when it is spilled, so file
 * names sort in queue order across a restart.
 *
 * The durability argument, in three rules:
 * 1. A line leaves the queue only through `settle`, which the writer calls after the server
 *    acknowledged it (2xx) or refused it for good (dead-lettered). Nothing else removes a line.
 * 2. Progress within a segment file is recorded in `cursor.json` (written atomically, fsync'd)
 *    after every acknowledged batch, before the next batch is taken; a segment file is deleted only
 *    once the cursor says all its lines are done. A restart therefore resumes after the last
 *    acknowledged batch: a batch can be sent twice only if the process or the server died between
 *    the server storing it and the cursor being written, and InfluxDB then overwrites the same
 *    point (same series and timestamp) with the same values.
 * 3. Memory segments are spilled to files (fsync'd) whenever the server fails and at stop, so
 *    during an outage, and across an orderly restart, everything queued is on disk. What is in
 *    memory at a crash (kill -9) is the one thing lost; it is at most `maxMemoryPoints`, and only
 *    while the server is healthy.
 */

interface Segment {
  readonly id: number
  /** Memory segment: all its lines. File segment: loaded only while it is the head. */
  lines: string[] | null
  /** Lines in the segment (for a file: whole records in the file). */
  count: number
  /** Lines at the start already done (acknowledged or refused). */
  settled: number
  /** Path of the segment file, null while in memory. */
  file: string | null
  bytes: number
  /** Open for appends (only ever the tail). */
  appender: SegmentAppender | null
  openedAt: number
}

/** A run of lines from the head segment, sent as one request. */
export interface Batch {
  readonly segment: Segment
  readonly start: number
  readonly lines: readonly string[]
  /** Sum of line lengths in UTF-16 units plus newlines: the batch-size bound, close enough to bytes for ASCII. */
  readonly chars: number
}

export interface SpoolOptions {
  directory: string
  segmentMaxPoints: number
  maxDiskBytes: number
  logger: Logger
  now: () => number
}

export interface RestoreReport {
  segments: number
  points: number
  bytes: number
  corruptRecords: number
  tornBytes: number
}

export type DiskAppendResult =
  | { appended: number; failure: null }
  | { appended: number; failure: 'queue_full' | 'spill_failed'; error?: unknown }

const LOCK_FILE = 'lock'
/** Directories held by a Spool of this process (a stale lock with our own pid is from an instance abandoned without stop). */
const OPEN_DIRECTORIES = new Set<string>()

export class Spool {
  /** Unsettled lines in memory segments (the bound `maxMemoryPoints` applies to this). */
  memoryPoints = 0
  /** Unsettled lines in segment files. */
  diskPoints = 0
  /** Bytes of segment files on disk now. */
  diskBytes = 0
  private readonly segments: Segment[] = []
  private nextId = 1
  private readonly options: SpoolOptions
  private readonly log: Logger
  private locked = false

  constructor(options: SpoolOptions) {
    this.options = options
    this.log = options.logger
  }

  /** Takes the directory (one writer per directory), reads the cursor and every segment file. */
  async restore(): Promise<RestoreReport> {
    const dir = this.options.directory
    // For plantwatt's user only: the plant's figures wait here (issue 12, finding 19).
    await mkdir(dir, { recursive: true, mode: 0o700 })
    this.lock()
    const cursor = this.readCursor()
    const report: RestoreReport = { segments: 0, points: 0, bytes: 0, corruptRecords: 0, tornBytes: 0 }
    const ids = readdirSync(dir)
      .map(parseSegmentFileName)
      .filter((id): id is number => id !== null)
      .sort((a, b) => a - b)
    let maxId = cursor ? cursor.segment : 0
    for (const id of ids) {
      maxId = Math.max(maxId, id)
      const path = join(dir, segmentFileName(id))
      // Segments before the cursor's were fully acknowledged; the process died before unlinking.
      if (cursor && id < cursor.segment) {
        unlinkSync(path)
        continue
      }
      const data = await readFile(path)
      const parsed = parseSegment(data)
      if (parsed.badHeader) {
        this.quarantine(path, 'unknown header')
        continue
      }
      const settled = cursor && id === cursor.segment ? Math.min(cursor.line, parsed.lines.length) : 0
      if (settled >= parsed.lines.length) {
        unlinkSync(path)
        continue
      }
      if (parsed.corrupt > 0 || parsed.tornBytes > 0) {
        this.log.error(
          { file: path, corruptRecords: parsed.corrupt, tornBytes: parsed.tornBytes },
          'segment file has damaged records (crash before the seal); they are skipped',
        )
      }
      report.corruptRecords += parsed.corrupt
      report.tornBytes += parsed.tornBytes
      this.segments.push({
        id,
        lines: null,
        count: parsed.lines.length,
        settled,
        file: path,
        bytes: data.length,
        appender: null,
        openedAt: 0,
      })
      this.diskPoints += parsed.lines.length - settled
      this.diskBytes += data.length
      report.segments++
      report.points += parsed.lines.length - settled
      report.bytes += data.length
    }
    this.nextId = maxId + 1
    fsyncDirectory(dir)
    return report
  }

  isEmpty(): boolean {
    return this.memoryPoints === 0 && this.diskPoints === 0
  }

  /** True when new lines must keep going to disk to stay behind the open segment file. */
  get tailIsOpenFile(): boolean {
    const tail = this.segments[this.segments.length - 1]
    return tail !== undefined && tail.appender !== null
  }

  /** Queues `lines[from..to)` in memory. The caller has checked the memory bound. */
  appendMemory(lines: readonly string[], from: number, to: number): void {
    let i = from
    while (i < to) {
      let tail = this.segments[this.segments.length - 1]
      if (!tail || tail.file !== null || tail.count >= this.options.segmentMaxPoints) {
        this.sealTail()
        tail = this.newSegment([])
      }
      const room = Math.min(to - i, this.options.segmentMaxPoints - tail.count)
      const target = tail.lines!
      for (let k = 0; k < room; k++) target.push(lines[i + k]!)
      tail.count += room
      this.memoryPoints += room
      i += room
    }
  }

  /**
   * Queues `lines[from..to)` in segment files. Stops at `maxDiskBytes` (`queue_full`) or at an I/O
   * error (`spill_failed`); what was appended before stays, whole records only.
   */
  appendDisk(lines: readonly string[], from: number, to: number): DiskAppendResult {
    let i = from
    try {
      while (i < to) {
        let tail = this.segments[this.segments.length - 1]
        if (!tail || tail.appender === null || tail.count >= this.options.segmentMaxPoints) {
          this.sealTail()
          tail = this.newSegment(null)
          tail.appender = new SegmentAppender(tail.file!)
          tail.bytes = tail.appender.bytes
          this.diskBytes += tail.bytes
        }
        const n = Math.min(to - i, this.options.segmentMaxPoints - tail.count)
        const records = encodeRecords(lines, i, i + n)
        if (this.diskBytes + records.length > this.options.maxDiskBytes) {
          return { appended: i - from, failure: 'queue_full' }
        }
        tail.appender!.append(records)
        tail.bytes += records.length
        tail.count += n
        this.diskBytes += records.length
        this.diskPoints += n
        i += n
      }
    } catch (error) {
      // The appender cut the file back to whole records; seal what is there and start afresh next time.
      this.sealTailQuietly()
      return { appended: i - from, failure: 'spill_failed', error }
    }
    return { appended: i - from, failure: null }
  }

  /**
   * The next lines to send: from the head segment only, so that a batch never spans two segments
   * and its acknowledgement maps to one cursor position. Loads the head's file when needed (sealing
   * it first if it is the open tail).
   */
  async peek(maxLines: number, maxChars: number): Promise<Batch | null> {
    for (;;) {
      const head = this.segments[0]
      if (!head) return null
      if (head.settled >= head.count) {
        if (head.appender !== null || (head.file === null && this.segments.length === 1)) return null
        this.dropHead(head)
        continue
      }
      if (head.lines === null) {
        if (head.appender !== null) this.sealTail()
        const loaded = await this.load(head)
        if (!loaded) continue
      }
      const lines = head.lines!
      const end = Math.min(head.count, head.settled + maxLines)
      let chars = 0
      let stop = head.settled
      while (stop < end) {
        const size = lines[stop]!.length + 1
        if (stop > head.settled && chars + size > maxChars) break
        chars += size
        stop++
      }
      return { segment: head, start: head.settled, lines: lines.slice(head.settled, stop), chars }
    }
  }

  /**
   * The first `n` lines of `batch` are done: acknowledged by the server, or refused for good and
   * dead-lettered. For a file segment the cursor is made durable before anything else moves.
   */
  settle(batch: Batch, n: number): void {
    const segment = batch.segment
    if (segment !== this.segments[0] || batch.start !== segment.settled) {
      throw new Error('history spool: settle out of order (bug)')
    }
    segment.settled += n
    if (segment.file === null) {
      this.memoryPoints -= n
    } else {
      this.diskPoints -= n
      writeFileAtomic(
        join(this.options.directory, CURSOR_FILE),
        JSON.stringify({ segment: segment.id, line: segment.settled }),
      )
    }
    if (segment.settled >= segment.count && segment.appender === null) this.dropHead(segment)
  }

  /**
   * Moves every memory segment to its own segment file (unsettled lines only), in place in the
   * list. Called when the server fails and at stop. A segment that does not fit under
   * `maxDiskBytes`, or hits an I/O error, stays in memory (it is within the memory bound).
   */
  spillMemory(): number {
    let spilled = 0
    for (const segment of this.segments) {
      if (segment.file !== null) continue
      const remaining = segment.count - segment.settled
      if (remaining === 0) continue
      const records = encodeRecords(segment.lines!, segment.settled, segment.count)
      if (this.diskBytes + records.length > this.options.maxDiskBytes) continue
      const path = join(this.options.directory, segmentFileName(segment.id))
      let appender: SegmentAppender | null = null
      try {
        appender = new SegmentAppender(path)
        appender.append(records)
        appender.seal()
      } catch (error) {
        this.log.error({ err: error, file: path }, 'could not spill a memory segment; it stays in memory')
        try {
          appender?.seal()
          unlinkSync(path)
        } catch {}
        continue
      }
      segment.file = path
      segment.lines = null
      segment.count = remaining
      segment.settled = 0
      segment.bytes = appender.bytes
      this.memoryPoints -= remaining
      this.diskPoints += remaining
      this.diskBytes += appender.bytes
      spilled += remaining
    }
    if (spilled > 0) fsyncDirectory(this.options.directory)
    return spilled
  }

  /** Seals the open segment file at the tail, if any: fsync and close. */
  sealTail(): void {
    const tail = this.segments[this.segments.length - 1]
    if (!tail || tail.appender === null) return
    tail.appender.seal()
    tail.appender = null
    fsyncDirectory(this.options.directory)
  }

  /** Bounds how long appended lines wait un-fsync'd during a long outage. */
  sealTailIfOlderThan(ms: number): void {
    const tail = this.segments[this.segments.length - 1]
    if (tail?.appender && this.options.now() - tail.openedAt >= ms) this.sealTailQuietly()
  }

  /** Spill, seal, release the directory. Safe to call twice. */
  close(): void {
    this.spillMemory()
    this.sealTailQuietly()
    if (this.locked) {
      try {
        unlinkSync(join(this.options.directory, LOCK_FILE))
      } catch {}
      OPEN_DIRECTORIES.delete(resolve(this.options.directory))
      this.locked = false
    }
  }

  private newSegment(lines: string[] | null): Segment {
    const id = this.nextId++
    const segment: Segment = {
      id,
      lines,
      count: 0,
      settled: 0,
      file: lines === null ? join(this.options.directory, segmentFileName(id)) : null,
      bytes: 0,
      appender: null,
      openedAt: this.options.now(),
    }
    this.segments.push(segment)
    return segment
  }

  private dropHead(segment: Segment): void {
    this.segments.shift()
    if (segment.file !== null) {
      // The cursor already says "all done" for this id, so a crash between here and the unlink is harmless.
      unlinkSync(segment.file)
      this.diskBytes -= segment.bytes
      this.diskPoints -= segment.count - segment.settled
    } else {
      this.memoryPoints -= segment.count - segment.settled
    }
  }

  private async load(segment: Segment): Promise<boolean> {
    const parsed = parseSegment(await readFile(segment.file!))
    if (parsed.badHeader) {
      this.segments.shift()
      this.diskBytes -= segment.bytes
      this.diskPoints -= segment.count - segment.settled
      this.quarantine(segment.file!, 'unknown header')
      return false
    }
    if (parsed.lines.length !== segment.count) {
      this.log.error(
        { file: segment.file, expected: segment.count, found: parsed.lines.length, corrupt: parsed.corrupt },
        'segment file changed on disk; sending what it holds',
      )
      this.diskPoints += parsed.lines.length - segment.count
      segment.count = parsed.lines.length
      segment.settled = Math.min(segment.settled, segment.count)
    }
    segment.lines = parsed.lines
    return true
  }

  /** A file we cannot read is kept, renamed, for a person to look at: never deleted. */
  private quarantine(path: string, reason: string): void {
    renameSync(path, `${path}.unreadable`)
    this.log.error({ file: path, reason }, 'segment file set aside as .unreadable')
  }

  private sealTailQuietly(): void {
    try {
      this.sealTail()
    } catch (error) {
      const tail = this.segments[this.segments.length - 1]
      if (tail) tail.appender = null
      this.log.error({ err: error }, 'could not seal a segment file')
    }
  }

  private readCursor(): { segment: number; line: number } | null {
    try {
      const value = JSON.parse(readFileSync(join(this.options.directory, CURSOR_FILE), 'utf8'))
      if (Number.isSafeInteger(value?.segment) && Number.isSafeInteger(value?.line)) return value
      this.log.error({ value }, 'cursor.json has an unexpected shape; ignoring it')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.error({ err: error }, 'cursor.json unreadable; ignoring it')
      }
    }
    return null
  }

  /** One writer per directory: two would interleave segment ids and both delete acknowledged files. */
  private lock(): void {
    const path = join(this.options.directory, LOCK_FILE)
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx', mode: 0o600 })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const pid = Number(readFileSync(path, 'utf8'))
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(`history directory ${this.options.directory} is in use by process ${pid}`)
      }
      if (pid === process.pid && OPEN_DIRECTORIES.has(resolve(this.options.directory))) {
        throw new Error(`history directory ${this.options.directory} is already open in this process`)
      }
      writeFileSync(path, String(process.pid), { mode: 0o600 })
    }
    OPEN_DIRECTORIES.add(resolve(this.options.directory))
    this.locked = true
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
