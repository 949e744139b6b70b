// What crosses between the primary of `plantwatt up --workers N` (processor, gateway, downlink
// owner) and its broker workers (issue 16, docs/state-ownership.md), over node's cluster IPC with
// the 'advanced' serialization (structured clone: Buffers cross as bytes, not JSON arrays).
//
// The one message on the hot path is `records`: the journal records a worker made durable, in one
// buffer per group commit (a few milliseconds of a fleet's uplinks), never one message per reading;
// a device's uplink crosses decoded (the worker parsed and validated its SenML), not as JSON.

import { type DecodedPack, decodeDecodedPack, encodeDecodedPack } from '@plantwatt/contract'
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
  /**
   * The processor has applied one `records` message of `records` records (in order): the worker
   * counts what is still unapplied and stops taking uplinks while that is over its bound.
   */
  | { t: 'applied'; records: number }
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

/**
 * A durable record as it crosses: a device's uplink decoded by the worker that received it
 * (`decoded`, and no payload: the journal keeps the raw one), or as it came (acks, and any message
 * the worker does not decode: the primary counts those).
 */
export interface ForwardedRecord extends JournalRecord {
  decoded?: DecodedPack
}

// A record in a batch: f64 seq | f64 receivedAtMs | u16 topic bytes | u8 kind (0 raw, 1 decoded)
// | u32 body bytes | topic | body (the payload, or encodeDecodedPack's bytes).
const FIXED = 8 + 8 + 2 + 1 + 4
const EMPTY = Buffer.alloc(0)

/** Forwarded records as one buffer (topics, payloads and decoded packs as bytes, no JSON). */
export function encodeRecords(records: readonly ForwardedRecord[]): Buffer {
  const bodies: Buffer[] = new Array(records.length)
  let size = 0
  for (let k = 0; k < records.length; k++) {
    const record = records[k]!
    const body = record.decoded ? encodeDecodedPack(record.decoded) : record.payload
    bodies[k] = body
    size += FIXED + Buffer.byteLength(record.topic) + body.length
  }
  const bytes = Buffer.allocUnsafe(size)
  let offset = 0
  for (let k = 0; k < records.length; k++) {
    const record = records[k]!
    const body = bodies[k]!
    bytes.writeDoubleLE(record.seq, offset)
    bytes.writeDoubleLE(record.receivedAtMs, offset + 8)
    const topicBytes = bytes.write(record.topic, offset + FIXED, 'utf8')
    bytes.writeUInt16LE(topicBytes, offset + 16)
    bytes.writeUInt8(record.decoded ? 1 : 0, offset + 18)
    bytes.writeUInt32LE(body.length, offset + 19)
    body.copy(bytes, offset + FIXED + topicBytes)
    offset += FIXED + topicBytes + body.length
  }
  return bytes
}

/** The records of encodeRecords, raw payloads as views into `bytes`. */
export function decodeRecords(bytes: Uint8Array): ForwardedRecord[] {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const records: ForwardedRecord[] = []
  let offset = 0
  while (offset + FIXED <= buffer.length) {
    const topicBytes = buffer.readUInt16LE(offset + 16)
    const decoded = buffer.readUInt8(offset + 18) === 1
    const bodyBytes = buffer.readUInt32LE(offset + 19)
    const topicStart = offset + FIXED
    const bodyStart = topicStart + topicBytes
    const body = buffer.subarray(bodyStart, bodyStart + bodyBytes)
    const record: ForwardedRecord = {
      seq: buffer.readDoubleLE(offset),
      receivedAtMs: buffer.readDoubleLE(offset + 8),
      topic: buffer.toString('utf8', topicStart, bodyStart),
      payload: decoded ? EMPTY : body,
    }
    if (decoded) record.decoded = decodeDecodedPack(body)
    records.push(record)
    offset = bodyStart + bodyBytes
  }
  return records
}
