// Checkpoint encoding: the engine's state is mostly large typed arrays (bucket history, retained
// readings), which JSON would inflate by a third and which can exceed the largest JavaScript
// string at 100,000 devices. The V8 value serializer keeps them as raw bytes in one Buffer; it is
// an in-memory encoding, no I/O (the caller decides where the bytes go).

import { deserialize, serialize } from 'node:v8'

export const CHECKPOINT_FORMAT = 'plantwatt-accounting'
export const CHECKPOINT_VERSION = 1

export function encodeCheckpoint(state: object): Buffer {
  return serialize({ format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, state })
}

export function decodeCheckpoint<T>(bytes: Uint8Array): T {
  const decoded = deserialize(bytes) as { format?: unknown; version?: unknown; state?: unknown }
  if (decoded?.format !== CHECKPOINT_FORMAT || decoded.version !== CHECKPOINT_VERSION) {
    throw new TypeError(`not a ${CHECKPOINT_FORMAT} checkpoint of version ${CHECKPOINT_VERSION}`)
  }
  return decoded.state as T
}
