import { closeSync, fsyncSync, ftruncateSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs'
import { crc32 } from './crc32.ts'

/**
 * Segment files: the on-disk part of the queue. One file per segment, named by the segment's id
 * (16 zero-padded digits, so name order is queue order), append-only while open, fsync'd once
 * when sealed.
 *
 *   plantwatt-history-segment v1 precision=ms\n      header: format and timestamp unit
 *   1c291ca3 bucket,site=yibin,step=1m energyWh=1 1732249800000\n
 *   <crc32 of the line's UTF-8 bytes, 8 lowercase hex> SP <one line-protocol line> LF
 *
 * A record is whole only with its LF and a matching CRC. A crash while a segment is open can leave
 * a torn last record (no LF) or, after a power loss before the seal's fsync, garbage: both are
 * skipped and counted when the file is read, never sent. Line protocol cannot contain LF (the
 * encoder refuses it), so LF is an unambiguous record end.
 */
export const SEGMENT_HEADER = 'plantwatt-history-segment v1 precision=ms\n'
const HEADER_BYTES = Buffer.from(SEGMENT_HEADER, 'utf8')
const SEGMENT_NAME = /^(\d{16})\.seg$/
export const CURSOR_FILE = 'cursor.json'

export function segmentFileName(id: number): string {
  return `${String(id).padStart(16, '0')}.seg`
}

export function parseSegmentFileName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name)
  return match ? Number(match[1]) : null
}

/** Records for `lines[from..to)`, ready to append. */
export function encodeRecords(lines: readonly string[], from: number, to: number): Buffer {
  const parts: Buffer[] = new Array(to - from)
  let size = 0
  for (let i = from; i < to; i++) {
    const body = Buffer.from(lines[i]!, 'utf8')
    const record = Buffer.allocUnsafe(body.length + 10)
    record.write(crc32(body).toString(16).padStart(8, '0'), 0, 'latin1')
    record[8] = 0x20
    body.copy(record, 9)
    record[record.length - 1] = 0x0a
    parts[i - from] = record
    size += record.length
  }
  return Buffer.concat(parts, size)
}

export interface ParsedSegment {
  lines: string[]
  /** Records whose CRC or framing did not match (skipped). */
  corrupt: number
  /** Bytes after the last LF: a record cut by a crash (skipped). */
  tornBytes: number
  /** The header is missing or of another version: nothing was read. */
  badHeader: boolean
}

export function parseSegment(data: Buffer): ParsedSegment {
  const result: ParsedSegment = { lines: [], corrupt: 0, tornBytes: 0, badHeader: false }
  if (data.length < HEADER_BYTES.length || !data.subarray(0, HEADER_BYTES.length).equals(HEADER_BYTES)) {
    result.badHeader = true
    return result
  }
  let start = HEADER_BYTES.length
  while (start < data.length) {
    const end = data.indexOf(0x0a, start)
    if (end < 0) {
      result.tornBytes = data.length - start
      break
    }
    if (end - start >= 10 && data[start + 8] === 0x20) {
      const expected = Number.parseInt(data.toString('latin1', start, start + 8), 16)
      if (expected === crc32(data, start + 9, end)) result.lines.push(data.toString('utf8', start + 9, end))
      else result.corrupt++
    } else {
      result.corrupt++
    }
    start = end + 1
  }
  return result
}

/** An open segment file. Synchronous on purpose: appends happen inside `write()`, and a page-cache write is microseconds. */
export class SegmentAppender {
  readonly path: string
  bytes = 0
  private fd: number | null

  constructor(path: string) {
    this.path = path
    // 'wx': a segment id is never reused, so an existing file means a bug, not something to overwrite.
    this.fd = openSync(path, 'wx', 0o600)
    this.writeAll(HEADER_BYTES)
    this.bytes = HEADER_BYTES.length
  }

  /** Appends whole records, or none: on an error the file is cut back to its last whole record. */
  append(records: Buffer): void {
    try {
      this.writeAll(records)
      this.bytes += records.length
    } catch (err) {
      try {
        ftruncateSync(this.fd!, this.bytes)
      } catch {
        // the reader skips a torn tail anyway
      }
      throw err
    }
  }

  /** fsync, then close. The data of a sealed segment survives a power loss. */
  seal(): void {
    if (this.fd === null) return
    const fd = this.fd
    this.fd = null
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }

  private writeAll(buffer: Buffer): void {
    let offset = 0
    while (offset < buffer.length) offset += writeSync(this.fd!, buffer, offset, buffer.length - offset)
  }
}

/** Writes a whole file in place of another: write a temporary file, fsync it, rename over. */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp`
  writeFileSync(tmp, data, { mode: 0o600 })
  const fd = openSync(tmp, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

/** Makes new, renamed or deleted entries of a directory durable (POSIX: the entry lives in the directory). */
export function fsyncDirectory(path: string): void {
  let fd: number | null = null
  try {
    fd = openSync(path, 'r')
    fsyncSync(fd)
  } catch {
    // Not every platform can fsync a directory (Windows); the file data itself is already synced.
  } finally {
    if (fd !== null) closeSync(fd)
  }
}
