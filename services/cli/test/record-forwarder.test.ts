import { describe, expect, it } from 'vitest'
import { decodeRecords, type ForwardedRecord } from '../src/cluster/protocol.ts'
import { RecordForwarder } from '../src/cluster/record-forwarder.ts'

// A broker worker of `plantwatt up --workers N` forwards the records its journal made durable to
// the primary (issue 16). Measured, one IPC message per group commit (about one per uplink at a
// few thousand a second) cost a worker more than its journal's writes: the forwarder gathers
// the records of several group commits into one message, and loses or reorders none of them.

const record = (seq: number): ForwardedRecord => ({
  seq,
  receivedAtMs: 1_800_000_000_000 + seq,
  topic: `sites/s/devices/d${seq}/up`,
  payload: Buffer.from(`[{"n":"power","v":${seq}}]`),
})

/** The next turn of the event loop after the current I/O (a journal's next group commit). */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

describe('RecordForwarder', () => {
  it('sends the records of several group commits in one message, in order, within its interval', async () => {
    const sent: { records: ForwardedRecord[]; count: number; at: number }[] = []
    let delivered: () => void = () => {}
    const first = new Promise<void>((resolve) => {
      delivered = resolve
    })
    const forwarder = new RecordForwarder({
      intervalMs: 50,
      maxRecords: 1000,
      send: (bytes, count) => {
        sent.push({ records: decodeRecords(bytes), count, at: Date.now() })
        delivered()
      },
    })
    const started = Date.now()
    for (let commit = 0; commit < 3; commit++) {
      for (let k = 0; k < 4; k++) forwarder.push(record(commit * 4 + k + 1))
      await nextTurn()
    }
    expect(sent).toEqual([])
    await first
    expect(sent).toHaveLength(1)
    expect(sent[0]!.count).toBe(12)
    expect(sent[0]!.records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(sent[0]!.records[4]).toEqual(record(5))
    expect(sent[0]!.at - started).toBeGreaterThanOrEqual(45)
    expect(forwarder.stats).toMatchObject({ batches: 1, records: 12 })
  })

  it('sends a full batch at once, and the rest on flush (a stopping worker)', () => {
    const sent: number[][] = []
    const forwarder = new RecordForwarder({
      intervalMs: 60_000,
      maxRecords: 5,
      send: (bytes) => sent.push(decodeRecords(bytes).map((r) => r.seq)),
    })
    for (let seq = 1; seq <= 7; seq++) forwarder.push(record(seq))
    expect(sent).toEqual([[1, 2, 3, 4, 5]])
    forwarder.flush()
    expect(sent).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7],
    ])
    // Nothing left: a second flush sends nothing, and no timer is left behind to send later.
    forwarder.flush()
    expect(sent).toHaveLength(2)
    expect(forwarder.stats).toMatchObject({ batches: 2, records: 7 })
  })

  it('asks to stop reading once too much is unapplied by the primary, and to read on at half of it', () => {
    const pressure: boolean[] = []
    const forwarder = new RecordForwarder({
      intervalMs: 60_000,
      maxRecords: 4,
      maxUnapplied: 10,
      send: () => {},
      onPressure: (paused) => pressure.push(paused),
    })
    for (let seq = 1; seq <= 8; seq++) forwarder.push(record(seq))
    expect(forwarder.unapplied).toBe(8)
    expect(pressure).toEqual([])
    for (let seq = 9; seq <= 12; seq++) forwarder.push(record(seq))
    expect(forwarder.unapplied).toBe(12)
    expect(pressure).toEqual([true])
    expect(forwarder.paused).toBe(true)
    // Applied, but still over half the bound: paused still.
    forwarder.applied(4)
    expect(pressure).toEqual([true])
    forwarder.applied(4)
    expect(forwarder.unapplied).toBe(4)
    expect(pressure).toEqual([true, false])
    expect(forwarder.stats).toMatchObject({ pauses: 1, applied: 8 })
  })
})
