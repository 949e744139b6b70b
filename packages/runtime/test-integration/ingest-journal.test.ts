import { constants } from 'node:fs'
import { appendFile, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IngestJournal, type JournalRecord } from '../src/ingest-journal.ts'

// The ingest journal on a real file system: what was acknowledged survives a reopen, a torn tail
// is cut off, and covered segments go away.

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

/** The open flags (Linux /proc/self/fdinfo) of this process's descriptors on `path`. */
async function openFlagsOf(path: string): Promise<number[]> {
  const flags: number[] = []
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target !== path) continue
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '')
    const match = /^flags:\s+([0-7]+)$/m.exec(info)
    if (match) flags.push(Number.parseInt(match[1]!, 8))
  }
  return flags
}

async function collect(journal: IngestJournal, afterSeq: number): Promise<JournalRecord[]> {
  const out: JournalRecord[] = []
  for await (const record of journal.replay(afterSeq)) out.push(record)
  return out
}

describe('ingest journal', () => {
  let dir: string
  let clock: number

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plantwatt-journal-'))
    clock = 1_732_250_000_000
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('commits the records appended in one turn of the event loop in one write and fdatasync', async () => {
    const journal = await IngestJournal.open(dir, { now: () => clock++ })
    // The broker appends every uplink of a socket read (and of every socket read in the same poll
    // phase) in one turn: they are one group commit, not the first alone and the rest after it.
    await appendAll(journal, 40)
    expect(journal.stats).toMatchObject({ appended: 40, writes: 1 })
    await appendAll(journal, 25, 40)
    expect(journal.stats).toMatchObject({ appended: 65, writes: 2 })
    await journal.close()
    const reopened = await IngestJournal.open(dir)
    expect((await collect(reopened, 0)).map((record) => record.seq)).toEqual(
      Array.from({ length: 65 }, (_, k) => k + 1),
    )
    await reopened.close()
  })

  it('hands each record to its reader once on disk, in order, and replays them after a reopen', async () => {
    const journal = await IngestJournal.open(dir, { now: () => clock++ })
    const durable: number[] = []
    journal.onDurable = (record) => durable.push(record.seq)
    await appendAll(journal, 500)
    expect(durable).toEqual(Array.from({ length: 500 }, (_, k) => k + 1))
    // Group commit: far fewer writes than records.
    expect(journal.stats.writes).toBeLessThan(500)
    await journal.close()

    const reopened = await IngestJournal.open(dir)
    expect(reopened.lastSeq).toBe(500)
    const after = await collect(reopened, 490)
    expect(after.map((record) => record.seq)).toEqual([491, 492, 493, 494, 495, 496, 497, 498, 499, 500])
    expect(after[0]).toMatchObject({ topic: 'sites/s/devices/d0/up', receivedAtMs: 1_732_250_000_490 })
    expect(JSON.parse(after[0]!.payload.toString())).toEqual([{ n: 'power', v: 490 }])
    await appendAll(reopened, 1, 500)
    expect(reopened.lastSeq).toBe(501)
    await reopened.close()
  })

  it('cuts off a torn record at the end (a crash mid-write) and carries on after the last whole one', async () => {
    const journal = await IngestJournal.open(dir)
    await appendAll(journal, 20)
    await journal.close()
    const [segment] = await readdir(dir)
    const path = join(dir, segment!)
    const whole = (await stat(path)).size
    await appendFile(path, Buffer.from([200, 0, 0, 0, 1, 2, 3])) // a length promising more than is there

    const reopened = await IngestJournal.open(dir)
    expect(reopened.lastSeq).toBe(20)
    expect((await stat(path)).size).toBe(whole)
    await appendAll(reopened, 5, 20)
    expect((await collect(reopened, 0)).map((record) => record.seq)).toEqual(
      Array.from({ length: 25 }, (_, k) => k + 1),
    )
    await reopened.close()
  })

  it('starts new segments and deletes those a checkpoint covers', async () => {
    const journal = await IngestJournal.open(dir, { segmentBytes: 4096 })
    for (let k = 0; k < 10; k++) await appendAll(journal, 20, k * 20)
    const segments = (await readdir(dir)).sort()
    expect(segments.length).toBeGreaterThan(3)
    await journal.release(100)
    const left = (await readdir(dir)).sort()
    expect(left.length).toBeLessThan(segments.length)
    // Every record after the checkpoint is still there.
    const after = await collect(journal, 100)
    expect(after.map((record) => record.seq)).toEqual(Array.from({ length: 100 }, (_, k) => k + 101))
    await journal.close()
  })

  // One group commit is one write(2) on a segment opened O_DSYNC (the write returns once the data
  // and the size needed to read it back are on disk, as write + fdatasync did): one round trip to
  // libuv's thread pool per commit instead of two. Issue 16's profile of a broker worker.
  it.runIf(process.platform === 'linux')(
    'writes every segment, the first and those it rolls to, through a descriptor opened O_DSYNC',
    async () => {
      const journal = await IngestJournal.open(dir, { segmentBytes: 4096 })
      await appendAll(journal, 20)
      const first = join(dir, (await readdir(dir)).sort()[0]!)
      const firstFlags = await openFlagsOf(first)
      expect(firstFlags).toHaveLength(1)
      expect(firstFlags[0]! & constants.O_DSYNC).toBe(constants.O_DSYNC)
      for (let k = 1; k < 6; k++) await appendAll(journal, 20, k * 20)
      const segments = (await readdir(dir)).sort()
      expect(segments.length).toBeGreaterThan(1)
      const lastFlags = await openFlagsOf(join(dir, segments.at(-1)!))
      expect(lastFlags).toHaveLength(1)
      expect(lastFlags[0]! & constants.O_DSYNC).toBe(constants.O_DSYNC)
      await journal.close()
      expect((await collect(await IngestJournal.open(dir), 0)).length).toBe(120)
    },
  )

  it('refuses appends after close', async () => {
    const journal = await IngestJournal.open(dir)
    await journal.close()
    await journal.close()
    await expect(appendAll(journal, 1)).rejects.toThrow(/closed/)
  })
})
