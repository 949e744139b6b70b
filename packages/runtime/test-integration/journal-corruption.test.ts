import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IngestJournal, type JournalRecord, type JournalSkip } from '../src/ingest-journal.ts'

// Issue 12 finding 12: a bad record in the journal lost data silently. Opening cut the last segment
// at the first bad length or CRC (dropping every acknowledged record after it), and replay stopped
// at a bad record in an earlier segment, with neither a log line nor a count. Real files: records
// are damaged in place, the journal reopened and replayed.

function appendAll(journal: IngestJournal, count: number, from = 0): Promise<void> {
  const appends: Promise<void>[] = []
  for (let k = from; k < from + count; k++) {
    const payload = Buffer.from(JSON.stringify([{ n: 'power', v: k }]))
    appends.push(
      new Promise((resolve, reject) =>
        journal.append(`sites/s/devices/d${k % 7}/up`, payload, (error) => (error ? reject(error) : resolve())),
      ),
    )
  }
  return Promise.all(appends).then(() => undefined)
}

async function collect(journal: IngestJournal, afterSeq = 0): Promise<JournalRecord[]> {
  const out: JournalRecord[] = []
  for await (const record of journal.replay(afterSeq)) out.push(record)
  return out
}

/** Offset of the record with `seq` in a segment's bytes (walking the length prefixes). */
function offsetOf(bytes: Buffer, seq: number): number {
  let offset = 0
  while (offset < bytes.length) {
    if (bytes.readDoubleLE(offset + 8) === seq) return offset
    offset += 8 + bytes.readUInt32LE(offset)
  }
  throw new Error(`no record ${seq}`)
}

async function damage(path: string, seq: number, how: 'payload' | 'length'): Promise<void> {
  const bytes = await readFile(path)
  const at = offsetOf(bytes, seq)
  // A byte of the body (the crc no longer matches), or a length promising far more than the file holds.
  if (how === 'payload') bytes.writeUInt8(bytes.readUInt8(at + 34) ^ 0xff, at + 34)
  else bytes.writeUInt32LE(0x7fff_0000, at)
  await writeFile(path, bytes)
}

const seqs = (records: JournalRecord[]) => records.map((record) => record.seq)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k)

describe('ingest journal: damaged records are skipped, logged and counted, never silently lost', () => {
  let dir: string
  let skips: JournalSkip[]

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-journal-bad-'))
    skips = []
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps the records after a bad one in the last segment when it opens, and goes on appending', async () => {
    const journal = await IngestJournal.open(dir)
    await appendAll(journal, 50)
    await journal.close()
    const [segment] = await readdir(dir)
    await damage(join(dir, segment!), 20, 'payload')

    const reopened = await IngestJournal.open(dir, { onSkip: (skip) => skips.push(skip) })
    expect(reopened.lastSeq).toBe(50)
    await appendAll(reopened, 5, 50)
    const records = await collect(reopened)
    expect(seqs(records)).toEqual([...range(1, 19), ...range(21, 55)])
    expect(skips.length).toBeGreaterThanOrEqual(1)
    expect(skips[0]).toMatchObject({ afterSeq: 19, nextSeq: 21, lostRecords: 1 })
    expect(reopened.stats.skippedRecords).toBeGreaterThanOrEqual(1)
    await reopened.close()
  })

  it('replays past a bad record in an earlier segment, and past a bad length, counting each', async () => {
    const journal = await IngestJournal.open(dir, { segmentBytes: 2048 })
    // One batch per await: a segment rolls between batches.
    for (let k = 0; k < 20; k++) await appendAll(journal, 10, k * 10)
    await journal.close()
    const segments = (await readdir(dir)).sort()
    expect(segments.length).toBeGreaterThan(3)
    const first = join(dir, segments[0]!)
    const second = join(dir, segments[1]!)
    const firstSeqOfSecond = Number(/(\d{16})/.exec(segments[1]!)![1])
    await damage(first, 3, 'payload')
    await damage(second, firstSeqOfSecond + 2, 'length')

    const reopened = await IngestJournal.open(dir, { segmentBytes: 2048, onSkip: (skip) => skips.push(skip) })
    const records = await collect(reopened)
    const lost = [3, firstSeqOfSecond + 2]
    expect(seqs(records)).toEqual(range(1, 200).filter((seq) => !lost.includes(seq)))
    expect(skips.map((skip) => skip.lostRecords)).toEqual([1, 1])
    expect(skips[0]!.segment).toBe(first)
    expect(reopened.stats.skippedRecords).toBe(2)
    await reopened.close()
  })

  it('reports the damaged last record of an earlier segment (no valid record follows it there)', async () => {
    const journal = await IngestJournal.open(dir, { segmentBytes: 2048 })
    for (let k = 0; k < 10; k++) await appendAll(journal, 10, k * 10)
    await journal.close()
    const segments = (await readdir(dir)).sort()
    expect(segments.length).toBeGreaterThan(2)
    const lastOfFirst = Number(/(\d{16})/.exec(segments[1]!)![1]) - 1
    await damage(join(dir, segments[0]!), lastOfFirst, 'payload')

    const reopened = await IngestJournal.open(dir, { segmentBytes: 2048, onSkip: (skip) => skips.push(skip) })
    expect(seqs(await collect(reopened))).toEqual(range(1, 100).filter((seq) => seq !== lastOfFirst))
    expect(skips).toMatchObject([{ afterSeq: lastOfFirst - 1, nextSeq: lastOfFirst + 1, lostRecords: 1 }])
    expect(reopened.stats.skippedRecords).toBe(1)
    await reopened.close()
  })

  it('still cuts off a torn tail (never acknowledged) without counting it as lost', async () => {
    const journal = await IngestJournal.open(dir)
    await appendAll(journal, 10)
    await journal.close()
    const [segment] = await readdir(dir)
    const path = join(dir, segment!)
    const bytes = await readFile(path)
    await writeFile(path, bytes.subarray(0, bytes.length - 5))
    const reopened = await IngestJournal.open(dir, { onSkip: (skip) => skips.push(skip) })
    expect(reopened.lastSeq).toBe(9)
    expect(seqs(await collect(reopened))).toEqual(range(1, 9))
    expect(skips).toEqual([])
    expect(reopened.stats.tornTailBytes).toBeGreaterThan(0)
    await reopened.close()
  })
})
