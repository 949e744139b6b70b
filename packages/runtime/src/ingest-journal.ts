// The ingest journal: what makes a QoS 1 reading that the broker acknowledged survive a crash.
//
// aedes writes PUBACK as soon as a publish has passed `authorizePublish` and gone to its emitter; the
// processor sees the message afterwards, and its state reaches the data directory only at the next
// checkpoint. So the broker appends every device uplink here first and lets aedes go on (and
// acknowledge) only once the record is on disk (a write on a descriptor opened O_DSYNC, as good
// as write + fdatasync). The processor reads the journal, not the emitter: each record has a
// sequence number, a checkpoint names the last one it covers, and on start the processor replays
// the records after it. Records wholly covered by a checkpoint are
// deleted segment by segment.
//
// Appends are group-committed: the records appended in one turn of the event loop go in one write,
// and records that arrive while a write is in flight go in the next one, so a fleet of 20,000
// devices costs a few hundred synchronous writes a second, not 20,000.
//
// File format, one directory, segments `journal-<first seq, 16 digits>.log`, each a sequence of:
//   u32 length of what follows the crc | u32 crc32 of it | f64 seq | f64 receivedAtMs |
//   u16 topic length | topic (UTF-8) | payload
// all little-endian. A torn record at the end of the last segment (a crash mid-write) fails its
// length or crc check; it was never acknowledged, and is cut off when the journal opens.
//
// Sequence numbers have no holes: a failed write gives its numbers to the records after it. So a
// damaged record in the middle of a segment (a bad length or crc followed by valid records) is
// found by scanning forward for the next record whose length, crc and sequence number hold, and
// the hole in the numbers says exactly how many records were lost; each such skip is reported
// (onSkip: the caller logs it) and counted (stats), never silent (issue 12 finding 12).

import { constants } from 'node:fs'
import { type FileHandle, mkdir, open, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

/**
 * A segment is opened for appending with O_DSYNC: each write(2) returns once its data, and the
 * file size needed to read it back, are on disk, exactly what write + fdatasync gave, in one call
 * to libuv's thread pool per group commit instead of two (issue 16's profile of a broker worker:
 * the two round trips and their promises were a tenth of its main thread).
 */
const APPEND_DSYNC = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC

export interface JournalRecord {
  seq: number
  receivedAtMs: number
  topic: string
  payload: Buffer
}

export interface IngestJournalOptions {
  /** A new segment starts once the current one holds this many bytes (default 64 MiB). */
  segmentBytes?: number
  /** Wall clock, ms (tests inject it). */
  now?: () => number
  /** Told of every damaged stretch skipped (once per journal instance and place). */
  onSkip?: (skip: JournalSkip) => void
}

/** A damaged stretch of a segment, skipped to the next valid record. */
export interface JournalSkip {
  segment: string
  /** Where the damage starts, bytes into the segment. */
  offset: number
  bytes: number
  /** The last valid record before it (0 at the start of the journal). */
  afterSeq: number
  /** The first valid record after it. */
  nextSeq: number
  /** Records lost in it: the hole in the sequence numbers. */
  lostRecords: number
}

export type AppendCallback = (error: Error | null) => void

const HEADER_BYTES = 8
const FIXED_BYTES = 8 + 8 + 2
const SEGMENT_PATTERN = /^journal-(\d{16})\.log$/

function segmentName(firstSeq: number): string {
  return `journal-${String(firstSeq).padStart(16, '0')}.log`
}

function encodeRecord(seq: number, receivedAtMs: number, topic: string, payload: Buffer): Buffer {
  const topicBytes = Buffer.byteLength(topic)
  const bodyLength = FIXED_BYTES + topicBytes + payload.length
  const record = Buffer.allocUnsafe(HEADER_BYTES + bodyLength)
  record.writeUInt32LE(bodyLength, 0)
  record.writeDoubleLE(seq, 8)
  record.writeDoubleLE(receivedAtMs, 16)
  record.writeUInt16LE(topicBytes, 24)
  record.write(topic, 26, 'utf8')
  payload.copy(record, 26 + topicBytes)
  record.writeUInt32LE(crc32(record.subarray(HEADER_BYTES)), 4)
  return record
}

/** The record at `offset` if its length, crc, topic length and sequence number (> afterSeq) hold. */
function recordAt(bytes: Buffer, offset: number, afterSeq: number): { record: JournalRecord; end: number } | undefined {
  if (offset + HEADER_BYTES > bytes.length) return undefined
  const bodyLength = bytes.readUInt32LE(offset)
  const end = offset + HEADER_BYTES + bodyLength
  if (bodyLength < FIXED_BYTES || end > bytes.length) return undefined
  const body = bytes.subarray(offset + HEADER_BYTES, end)
  if (crc32(body) !== bytes.readUInt32LE(offset + 4)) return undefined
  const topicBytes = body.readUInt16LE(16)
  if (FIXED_BYTES + topicBytes > bodyLength) return undefined
  const seq = body.readDoubleLE(0)
  if (!Number.isSafeInteger(seq) || seq <= afterSeq) return undefined
  return {
    record: {
      seq,
      receivedAtMs: body.readDoubleLE(8),
      topic: body.toString('utf8', FIXED_BYTES, FIXED_BYTES + topicBytes),
      // A copy: the segment's buffer is dropped after the replay.
      payload: Buffer.from(body.subarray(FIXED_BYTES + topicBytes)),
    },
    end,
  }
}

/**
 * The valid records of one segment's bytes, the damaged stretches skipped between them, and where
 * the last valid one ends (what follows it, with no valid record after, is a torn tail).
 */
function decodeRecords(
  bytes: Buffer,
  firstSeq: number,
): { records: JournalRecord[]; skips: Omit<JournalSkip, 'segment'>[]; validBytes: number } {
  const records: JournalRecord[] = []
  const skips: Omit<JournalSkip, 'segment'>[] = []
  let offset = 0
  let lastSeq = firstSeq - 1
  while (offset + HEADER_BYTES <= bytes.length) {
    const found = recordAt(bytes, offset, lastSeq)
    if (found) {
      records.push(found.record)
      lastSeq = found.record.seq
      offset = found.end
      continue
    }
    // Damage (or a torn tail): the next offset where a whole valid record starts, if any.
    let next = offset + 1
    let resync: { record: JournalRecord; end: number } | undefined
    for (; next + HEADER_BYTES <= bytes.length; next++) {
      resync = recordAt(bytes, next, lastSeq)
      if (resync) break
    }
    if (!resync) break
    skips.push({
      offset,
      bytes: next - offset,
      afterSeq: lastSeq,
      nextSeq: resync.record.seq,
      lostRecords: resync.record.seq - lastSeq - 1,
    })
    offset = next
  }
  return { records, skips, validBytes: offset }
}

interface Pending {
  record: Buffer
  callback: AppendCallback
}

export class IngestJournal {
  /** Sequence number of the last record appended (0 before the first ever). */
  get lastSeq(): number {
    return this.nextSeq - 1
  }

  /** Called for each record once it is on disk, in sequence order. */
  onDurable: (record: JournalRecord) => void = () => {}

  readonly stats = {
    appended: 0,
    writes: 0,
    bytes: 0,
    failures: 0,
    readerErrors: 0,
    /** Records lost in damaged stretches that were skipped (the holes in the sequence numbers). */
    skippedRecords: 0,
    /** Bytes of damaged stretches skipped. */
    skippedBytes: 0,
    /** Bytes of a torn last record cut off at open (a crash mid-write: never acknowledged). */
    tornTailBytes: 0,
  }

  private pending: Pending[] = []
  private pendingRecords: JournalRecord[] = []
  private writing = false
  /** A batch is due at the end of this turn of the event loop (setImmediate). */
  private scheduled = false
  private readonly startBatch = () => {
    this.scheduled = false
    if (!this.writing && this.pending.length > 0) void this.writeBatch()
  }
  private closed = false
  private segmentSize = 0
  /** The current segment may end in bytes of a failed write that could not be cut off. */
  private mustRoll = false
  private readonly segmentBytes: number
  private readonly now: () => number
  private readonly onSkip: (skip: JournalSkip) => void
  /** Skips already reported (segment and offset), so a replay after open does not report twice. */
  private readonly reported = new Set<string>()

  private constructor(
    private readonly dir: string,
    private segments: { firstSeq: number; path: string }[],
    private handle: FileHandle,
    private nextSeq: number,
    segmentSize: number,
    options: IngestJournalOptions,
  ) {
    this.segmentSize = segmentSize
    this.segmentBytes = options.segmentBytes ?? 64 * 2 ** 20
    this.now = options.now ?? Date.now
    this.onSkip = options.onSkip ?? (() => {})
  }

  /** Opens (or creates) the journal in `dir`, cutting off a torn record at the end. */
  static async open(dir: string, options: IngestJournalOptions = {}): Promise<IngestJournal> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const segments = (await readdir(dir))
      .map((name) => SEGMENT_PATTERN.exec(name))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => ({ firstSeq: Number(match[1]), path: join(dir, match[0]) }))
      .sort((a, b) => a.firstSeq - b.firstSeq)
    let nextSeq = 1
    let size = 0
    let tornTail = 0
    let decoded: ReturnType<typeof decodeRecords> | undefined
    const last = segments.at(-1)
    if (last) {
      const bytes = await readFile(last.path)
      decoded = decodeRecords(bytes, last.firstSeq)
      const { records, validBytes } = decoded
      nextSeq = records.length > 0 ? records.at(-1)!.seq + 1 : last.firstSeq
      size = validBytes
      if (validBytes < bytes.length) {
        tornTail = bytes.length - validBytes
        const file = await open(last.path, 'r+')
        await file.truncate(validBytes)
        await file.sync()
        await file.close()
      }
    } else {
      segments.push({ firstSeq: 1, path: join(dir, segmentName(1)) })
    }
    const handle = await open(segments.at(-1)!.path, APPEND_DSYNC, 0o600)
    const journal = new IngestJournal(dir, segments, handle, nextSeq, size, options)
    journal.stats.tornTailBytes = tornTail
    if (last && decoded) journal.report(last.path, decoded.skips)
    return journal
  }

  /**
   * Appends an uplink; `callback` runs once it is on disk (then the broker may acknowledge it), or
   * with the error that kept it off (then the broker must not).
   */
  append(topic: string, payload: Buffer, callback: AppendCallback): void {
    if (this.closed) return callback(new Error('the ingest journal is closed'))
    const seq = this.nextSeq++
    const receivedAtMs = this.now()
    this.pending.push({ record: encodeRecord(seq, receivedAtMs, topic, payload), callback })
    this.pendingRecords.push({ seq, receivedAtMs, topic, payload })
    // The batch starts once this turn's poll phase is over rather than with the first append: the
    // broker appends the uplinks of every socket read in that phase, and they then share one
    // write and one fdatasync instead of the first going alone and the rest waiting for it.
    if (!this.writing && !this.scheduled) {
      this.scheduled = true
      setImmediate(this.startBatch)
    }
  }

  /** Every record after `afterSeq` still held, in order (the processor's start after a checkpoint). */
  async *replay(afterSeq: number): AsyncGenerator<JournalRecord> {
    for (let k = 0; k < this.segments.length; k++) {
      const next = this.segments[k + 1]
      if (next && next.firstSeq <= afterSeq + 1) continue
      const segment = this.segments[k]!
      const bytes = await readFile(segment.path)
      const { records, skips, validBytes } = decodeRecords(bytes, segment.firstSeq)
      // Damage at the end of a segment that another follows is no torn tail (the segment was
      // finished before the next began): what the next segment's first number skips was lost.
      if (next && validBytes < bytes.length) {
        const afterSeq = records.at(-1)?.seq ?? segment.firstSeq - 1
        skips.push({
          offset: validBytes,
          bytes: bytes.length - validBytes,
          afterSeq,
          nextSeq: next.firstSeq,
          lostRecords: Math.max(0, next.firstSeq - afterSeq - 1),
        })
      }
      this.report(segment.path, skips)
      for (const record of records) if (record.seq > afterSeq) yield record
    }
  }

  /** Deletes the segments whose records are all at or below `seq` (covered by a checkpoint). */
  async release(seq: number): Promise<void> {
    while (this.segments.length > 1 && this.segments[1]!.firstSeq <= seq + 1) {
      const old = this.segments.shift()!
      await rm(old.path, { force: true })
    }
  }

  /** Waits for the appends in flight, then closes the file. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    while (this.writing || this.pending.length > 0) {
      if (!this.writing) await this.writeBatch()
      else await new Promise((resolve) => setImmediate(resolve))
    }
    await this.handle.close()
  }

  /** Counts and reports the skips of one segment, each place once. */
  private report(segment: string, skips: Omit<JournalSkip, 'segment'>[]): void {
    for (const skip of skips) {
      const key = `${segment}:${skip.offset}`
      if (this.reported.has(key)) continue
      this.reported.add(key)
      this.stats.skippedRecords += skip.lostRecords
      this.stats.skippedBytes += skip.bytes
      this.onSkip({ segment, ...skip })
    }
  }

  private async writeBatch(): Promise<void> {
    this.writing = true
    while (this.pending.length > 0) {
      const batch = this.pending
      const records = this.pendingRecords
      this.pending = []
      this.pendingRecords = []
      const bytes = Buffer.concat(batch.map((item) => item.record))
      let failure: Error | null = null
      try {
        if (this.mustRoll || (this.segmentSize > 0 && this.segmentSize + bytes.length > this.segmentBytes)) {
          await this.roll(records[0]!.seq)
          this.mustRoll = false
        }
        // On disk when the write returns (O_DSYNC, see APPEND_DSYNC): no fdatasync after it.
        await this.writeFully(bytes)
        this.segmentSize += bytes.length
        this.stats.writes++
        this.stats.bytes += bytes.length
        this.stats.appended += batch.length
      } catch (error) {
        failure = error as Error
        this.stats.failures++
        // Cut off what part of the batch reached the file, so that the next records follow whole
        // ones; these records were not acknowledged and their devices will send them again. If
        // that fails too, the next batch starts a new segment (and a reader skips the remains).
        await this.handle.truncate(this.segmentSize).catch(() => {
          this.mustRoll = true
        })
        this.renumberPending(records[0]!.seq)
      }
      for (const item of batch) item.callback(failure)
      if (failure) continue
      for (const record of records) {
        try {
          this.onDurable(record)
        } catch {
          // The reader contains its own failures; one must never stop the journal.
          this.stats.readerErrors++
        }
      }
    }
    this.writing = false
  }

  /**
   * Writes all of `bytes`: one write(2) may write part of them (a disk that fills up mid-write
   * does), and a part acknowledged as the whole would be lost at the next open.
   */
  private async writeFully(bytes: Buffer): Promise<void> {
    let offset = 0
    while (offset < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, offset, bytes.length - offset)
      if (bytesWritten <= 0) throw Object.assign(new Error('the ingest journal wrote nothing'), { code: 'EIO' })
      offset += bytesWritten
    }
  }

  /**
   * A failed batch gives its sequence numbers to the records appended since, so that the journal
   * has no holes and a hole always means records lost to damage.
   */
  private renumberPending(firstSeq: number): void {
    for (let k = 0; k < this.pending.length; k++) {
      const record = this.pendingRecords[k]!
      record.seq = firstSeq + k
      this.pending[k]!.record = encodeRecord(record.seq, record.receivedAtMs, record.topic, record.payload)
    }
    this.nextSeq = firstSeq + this.pending.length
  }

  private async roll(firstSeq: number): Promise<void> {
    const path = join(this.dir, segmentName(firstSeq))
    // The new file first: on a full disk the open fails and the current segment stays usable.
    const handle = await open(path, APPEND_DSYNC, 0o600)
    await this.handle.close().catch(() => {})
    this.handle = handle
    // Rolling to the name of the current segment (it holds only the remains of a failed write)
    // keeps appending to that file.
    if (this.segments.at(-1)?.path !== path) this.segments.push({ firstSeq, path })
    this.segmentSize = (await handle.stat()).size
  }
}
