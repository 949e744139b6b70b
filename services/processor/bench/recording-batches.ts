// Streams a recording (docs/recording-format.md) as batches of message lines, never the whole file:
// a 24-hour, 40,000-device recording is over a gigabyte compressed and tens of millions of lines.
// Batches (one decompressed chunk each, a few hundred lines) rather than lines, so the benchmark
// can time its own work per batch without a clock read per message, and so that the gunzip
// thread's work overlaps the main thread's instead of a promise round trip per line (readline's
// async iterator, which openRecordingLines uses, costs about as much as a small pipeline step).

import { createReadStream } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import { createGunzip } from 'node:zlib'
import { decodeHeader, type RecordingHeader } from '../../../simulators/fleet/src/recording/index.ts'

const CHUNK_BYTES = 1 << 20

export interface RecordingStream {
  header: RecordingHeader
  /** Message lines in file order, in batches; empty lines skipped. */
  batches: AsyncGenerator<string[]>
}

export async function openRecordingBatches(path: string): Promise<RecordingStream> {
  const input = createReadStream(path, { highWaterMark: CHUNK_BYTES })
  const gunzip = input.pipe(createGunzip({ chunkSize: CHUNK_BYTES }))
  const chunks = gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  const decoder = new StringDecoder('utf8')
  let carry = ''
  let pending: string[] = []

  // The header is the first line; whatever follows it in the same chunk is the first batch.
  let header: RecordingHeader | undefined
  while (header === undefined) {
    const next = await chunks.next()
    if (next.done) throw new Error(`${path} is an empty recording`)
    carry += decoder.write(next.value)
    const end = carry.indexOf('\n')
    if (end < 0) continue
    header = decodeHeader(carry.slice(0, end))
    carry = carry.slice(end + 1)
  }
  const split = (text: string): string[] => {
    const lines = text.split('\n')
    carry = lines.pop()!
    return lines.filter((line) => line.length > 0)
  }
  pending = split(carry)

  async function* batches(): AsyncGenerator<string[]> {
    try {
      if (pending.length > 0) yield pending
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
        const lines = split(carry + decoder.write(next.value))
        if (lines.length > 0) yield lines
      }
      const rest = carry + decoder.end()
      if (rest.length > 0) yield [rest]
    } finally {
      input.destroy()
      gunzip.destroy()
    }
  }
  return { header, batches: batches() }
}
