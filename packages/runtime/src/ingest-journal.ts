// The ingest journal: what makes a QoS 1 reading that the broker acknowledged survive a crash.
//
// aedes writes PUBACK as soon as a publish has passed `authorizePublish` and gone to its emitter; the
// processor sees the message afterwards, and its state reaches the data directory only at the next
// checkpoint. So the broker appends every device uplink here first and lets aedes go on (and
// acknowledge) only once the record is on disk (fdatasync). The processor reads the journal, not
// the emitter: each record has a sequence number, a checkpoint names the last one it covers, and on
// start the processor replays the records after it. Records wholly covered by a checkpoint are
// deleted segment by segment.
//
// Appends are group-committed: records that arrive while a write is in flight go in the next write,
// so a fleet of 20,000 devices costs a few hundred fdatasync calls a second, not 20,000.
//
// File format, one directory, segments `journal-<first seq, 16 digits>.log`, each a sequence of:
//   u32 length of what follows the crc | u32 crc32 of it | f64 seq | f64 receivedAtMs |
//   u16 topic length | topic (UTF-8) | payload
// all little-endian. A torn record at the end of the last segment (a crash mid-write) fails its
// length or crc check; it was never acknowledged, and is cut off when the journal opens.

import { type FileHandle, mkdir, open, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

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

/** The whole records of one segment's bytes, and where the last whole one ends. */
function decodeRecords(bytes: Buffer): { records: JournalRecord[]; validBytes: number } {
  const records: JournalRecord[] = []
  let offset = 0
  while (offset + HEADER_BYTES <= bytes.length) {
    const bodyLength = bytes.readUInt32LE(offset)
    const end = offset + HEADER_BYTES + bodyLength
    if (bodyLength < FIXED_BYTES || end > bytes.length) break
    const body = bytes.subarray(offset + HEADER_BYTES, end)
    if (crc32(body) !== bytes.readUInt32LE(offset + 4)) break
    const topicBytes = body.readUInt16LE(16)
    if (FIXED_BYTES + topicBytes > bodyLength) break
    records.push({
      seq: body.readDoubleLE(0),
      receivedAtMs: body.readDoubleLE(8),
      topic: body.toString('utf8', FIXED_BYTES, FIXED_BYTES + topicBytes),
      // A copy: the segment's buffer is dropped after the replay.
      payload: Buffer.from(body.subarray(FIXED_BYTES + topicBytes)),
    })
    offset = end
  }
  return { records, validBytes: offset }
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

  readonly stats = { appended: 0, writes: 0, bytes: 0, failures: 0, readerErrors: 0 }

  private pending: Pending[] = []
  private pendingRecords: JournalRecord[] = []
  private writing = false
  private closed = false
  private segmentSize = 0
  private readonly segmentBytes: number
  private readonly now: () => number

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
    const last = segments.at(-1)
    if (last) {
      const bytes = await readFile(last.path)
      const { records, validBytes } = decodeRecords(bytes)
      nextSeq = records.length > 0 ? records.at(-1)!.seq + 1 : last.firstSeq
      size = validBytes
      if (validBytes < bytes.length) {
        const file = await open(last.path, 'r+')
        await file.truncate(validBytes)
        await file.sync()
        await file.close()
      }
    } else {
      segments.push({ firstSeq: 1, path: join(dir, segmentName(1)) })
    }
    const handle = await open(segments.at(-1)!.path, 'a', 0o600)
    return new IngestJournal(dir, segments, handle, nextSeq, size, options)
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
    if (!this.writing) void this.writeBatch()
  }

  /** Every record after `afterSeq` still held, in order (the processor's start after a checkpoint). */
  async *replay(afterSeq: number): AsyncGenerator<JournalRecord> {
    for (let k = 0; k < this.segments.length; k++) {
      const next = this.segments[k + 1]
      if (next && next.firstSeq <= afterSeq + 1) continue
      const { records } = decodeRecords(await readFile(this.segments[k]!.path))
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
        if (this.segmentSize > 0 && this.segmentSize + bytes.length > this.segmentBytes)
          await this.roll(records[0]!.seq)
        await this.handle.write(bytes)
        await this.handle.datasync()
        this.segmentSize += bytes.length
        this.stats.writes++
        this.stats.bytes += bytes.length
        this.stats.appended += batch.length
      } catch (error) {
        failure = error as Error
        this.stats.failures++
        // Cut off what part of the batch reached the file, so that the next records follow whole
        // ones; these records were not acknowledged and their devices will send them again.
        await this.handle.truncate(this.segmentSize).catch(() => {})
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

  private async roll(firstSeq: number): Promise<void> {
    await this.handle.close()
    const path = join(this.dir, segmentName(firstSeq))
    this.handle = await open(path, 'a', 0o600)
    this.segments.push({ firstSeq, path })
    this.segmentSize = 0
  }
}
