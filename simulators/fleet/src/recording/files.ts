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
} from './format.ts'

/** Writes a recording: gzip NDJSON, with backpressure (write awaits when the file lags). */
export class RecordingWriter {
  private readonly gzip = createGzip({ level: 6 })
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
    this.count++
    if (!this.gzip.write(`${encodeRecordLine(message)}\n`)) await once(this.gzip, 'drain')
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
  const lines = createInterface({
    input: createReadStream(path).pipe(createGunzip()),
    crlfDelay: Number.POSITIVE_INFINITY,
  })
  const iterator = lines[Symbol.asyncIterator]()
  const first = await iterator.next()
  if (first.done) throw new Error(`${path} is an empty recording`)
  const header = decodeHeader(first.value)
  async function* messages(): AsyncGenerator<RecordedMessage> {
    let lineNumber = 1
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        lineNumber++
        if (next.value.length > 0) yield decodeRecordLine(next.value, lineNumber)
      }
    } finally {
      lines.close()
    }
  }
  return { header, messages: messages() }
}
