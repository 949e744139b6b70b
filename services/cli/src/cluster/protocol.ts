// What crosses between the primary of `plantwatt up --workers N` (processor, gateway, downlink
// owner) and its broker workers (issue 16, docs/state-ownership.md), over node's cluster IPC with
// the 'advanced' serialization (structured clone: Buffers cross as bytes, not JSON arrays).
//
// The one message on the hot path is `records`: the journal records a worker made durable, in one
// buffer per group commit (a few milliseconds of a fleet's uplinks), never one message per reading.

import type { JournalRecord } from '@plantwatt/runtime'
import type { UpOptions } from '../up.ts'

/** A downlink still to be delivered, as the owner numbers it. */
export interface Downlink {
  n: number
  topic: string
  payload: Buffer
}

export type ToWorker =
  /** The options of `up` (the plant model included) and the number of workers. */
  | { t: 'init'; options: UpOptions; workers: number }
  /** Replay the journal after `afterSeq` into the forward stream, then listen; `pending` downlinks. */
  | {
      t: 'start'
      afterSeq: number
      pending: [deviceId: string, downlinks: Downlink[]][]
      /**
       * False at the primary's start: it replayed this journal itself and counted any damage; a
       * worker started again later counts what its own open and replay find.
       */
      countSkips: boolean
    }
  /** The owner's checkpoint covers the journal up to `seq`. */
  | { t: 'release'; seq: number }
  /** A downlink to deliver (every worker mirrors the pending ones). */
  | { t: 'down'; deviceId: string; downlink: Downlink }
  /** Delivered or answered: no longer pending anywhere. */
  | { t: 'settled'; deviceId: string; n: number }
  | { t: 'metrics'; id: number }
  | { t: 'stop' }

export type FromWorker =
  /** The worker's entry point runs: the primary sends `init`. */
  | { t: 'boot' }
  /** The worker listens for messages: the primary may send `start`. */
  | { t: 'hello' }
  | { t: 'records'; bytes: Buffer }
  | { t: 'listening'; port: number; proxyPort: number }
  /** The device acknowledged (PUBACK) downlink `n`. */
  | { t: 'delivered'; deviceId: string; n: number }
  | { t: 'metrics'; id: number; metrics: unknown[] }
  | { t: 'stopped' }

// A record in a batch: f64 seq | f64 receivedAtMs | u16 topic bytes | u32 payload bytes | topic | payload.
const FIXED = 8 + 8 + 2 + 4

/** Journal records as one buffer (topics and payloads as bytes, no JSON). */
export function encodeRecords(records: readonly JournalRecord[]): Buffer {
  let size = 0
  for (const record of records) size += FIXED + Buffer.byteLength(record.topic) + record.payload.length
  const bytes = Buffer.allocUnsafe(size)
  let offset = 0
  for (const record of records) {
    bytes.writeDoubleLE(record.seq, offset)
    bytes.writeDoubleLE(record.receivedAtMs, offset + 8)
    const topicBytes = bytes.write(record.topic, offset + FIXED, 'utf8')
    bytes.writeUInt16LE(topicBytes, offset + 16)
    bytes.writeUInt32LE(record.payload.length, offset + 18)
    record.payload.copy(bytes, offset + FIXED + topicBytes)
    offset += FIXED + topicBytes + record.payload.length
  }
  return bytes
}

/** The records of encodeRecords, their payloads views into `bytes`. */
export function decodeRecords(bytes: Uint8Array): JournalRecord[] {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const records: JournalRecord[] = []
  let offset = 0
  while (offset + FIXED <= buffer.length) {
    const topicBytes = buffer.readUInt16LE(offset + 16)
    const payloadBytes = buffer.readUInt32LE(offset + 18)
    const topicStart = offset + FIXED
    const payloadStart = topicStart + topicBytes
    records.push({
      seq: buffer.readDoubleLE(offset),
      receivedAtMs: buffer.readDoubleLE(offset + 8),
      topic: buffer.toString('utf8', topicStart, payloadStart),
      payload: buffer.subarray(payloadStart, payloadStart + payloadBytes),
    })
    offset = payloadStart + payloadBytes
  }
  return records
}
