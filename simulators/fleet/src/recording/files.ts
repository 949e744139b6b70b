import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { createGunzip, createGzip } from 'node:zlib'
import {
  decodeHeader,
  decodeRecordLine,
  encodeRecordLine,
  type RecordedMessage,
  type RecordingHeader,
  recordLineTime,
} from './format.ts'

/**
 * Bytes the writer may hold before write() waits for gzip: waiting at gzip's own 16 KiB mark
 * makes every few lines a round trip to the thread pool, a third of the simulator's speed.
 */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024

/** Writes a recording: gzip NDJSON, with backpressure (write awaits when the file lags). */
export class RecordingWriter {
  private readonly gzip = createGzip({ level: 6, chunkSize: 64 * 1024 })
  private readonly file
  private count = 0

  private constructor(path: string, header: RecordingHeader) {
    this.file = createWriteStream(path)
    this.gzip.pipe(this.file)
    this.gzip.write(`${JSON.stringify(header)}\n`)
  }

  static open(path: string, header: RecordingHeader): RecordingWriter {
    return new RecordingWriter(path, header)
  }

  get messages(): number {
    return this.count
  }

  async write(message: RecordedMessage): Promise<void> {
    await this.writeLine(encodeRecordLine(message))
  }

  /** One message line already encoded (merging recordings copies lines as they are). */
  async writeLine(line: string): Promise<void> {
    this.count++
    this.gzip.write(`${line}\n`)
    if (this.gzip.writableLength > MAX_BUFFERED_BYTES) await once(this.gzip, 'drain')
  }

  async close(): Promise<void> {
    const finished = once(this.file, 'close')
    this.gzip.end()
    await finished
  }
}

/** Reads a recording: its header, then its messages in order, streaming (never the whole file). */
export async function openRecording(
  path: string,
): Promise<{ header: RecordingHeader; messages: AsyncGenerator<RecordedMessage> }> {
  const { header, lines } = await openRecordingLines(path)
  async function* messages(): AsyncGenerator<RecordedMessage> {
    for await (const { text, lineNumber } of lines) yield decodeRecordLine(text, lineNumber)
  }
  return { header, messages: messages() }
}

/** A recording's header and its message lines as text (not decoded), with their line numbers. */
export async function openRecordingLines(
  path: string,
): Promise<{ header: RecordingHeader; lines: AsyncGenerator<{ text: string; lineNumber: number }> }> {
  const input = createReadStream(path)
  const reader = createInterface({ input: input.pipe(createGunzip()), crlfDelay: Number.POSITIVE_INFINITY })
  const iterator = reader[Symbol.asyncIterator]()
  let first: IteratorResult<string>
  try {
    first = await iterator.next()
  } catch (error) {
    reader.close()
    throw new Error(`${path} is not a gzip recording: ${(error as Error).message}`, { cause: error })
  }
  if (first.done) throw new Error(`${path} is an empty recording`)
  const header = decodeHeader(first.value)
  async function* lines(): AsyncGenerator<{ text: string; lineNumber: number }> {
    let lineNumber = 1
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        lineNumber++
        if (next.value.length > 0) yield { text: next.value, lineNumber }
      }
    } finally {
      reader.close()
      input.destroy()
    }
  }
  return { header, lines: lines() }
}

/** Site → device ids of a recording: from its header, or by reading it once when the header has none. */
export async function recordingSites(path: string): Promise<Record<string, string[]>> {
  const { header, lines } = await openRecordingLines(path)
  if (header.sites) {
    await lines.return(undefined)
    return header.sites
  }
  const sites = new Map<string, Set<string>>()
  for await (const { text, lineNumber } of lines) {
    const message = decodeRecordLine(text, lineNumber)
    let ids = sites.get(message.site)
    if (!ids) {
      ids = new Set()
      sites.set(message.site, ids)
    }
    ids.add(message.deviceId)
  }
  return Object.fromEntries([...sites].map(([site, ids]) => [site, [...ids]]))
}

/**
 * Merges recordings of disjoint device sets (the parts written by simulator workers) into one,
 * in `t` order; on equal `t` the earlier part first. Each part is in `t` order already, and every
 * device is in one part, so each device's messages keep their order. Lines are copied as text.
 */
export async function mergeRecordings(parts: readonly string[], out: string, header: RecordingHeader): Promise<number> {
  const writer = RecordingWriter.open(out, header)
  const heads: { time: number; text: string; part: number; lines: AsyncGenerator<{ text: string }> }[] = []
  for (const [part, path] of parts.entries()) {
    const { lines } = await openRecordingLines(path)
    const next = await lines.next()
    if (!next.done) heads.push({ time: lineTime(next.value.text, path), text: next.value.text, part, lines })
  }
  // A handful of parts: a linear scan for the smallest head is as fast as a heap and simpler.
  while (heads.length > 0) {
    let best = 0
    for (let i = 1; i < heads.length; i++) {
      const a = heads[i]!
      const b = heads[best]!
      if (a.time < b.time || (a.time === b.time && a.part < b.part)) best = i
    }
    const head = heads[best]!
    await writer.writeLine(head.text)
    const next = await head.lines.next()
    if (next.done) heads.splice(best, 1)
    else {
      head.text = next.value.text
      head.time = lineTime(head.text, parts[head.part]!)
    }
  }
  await writer.close()
  return writer.messages
}

function lineTime(text: string, path: string): number {
  const time = recordLineTime(text)
  if (Number.isNaN(time)) throw new Error(`${path}: a line without a leading "t": ${text.slice(0, 80)}`)
  return time
}
