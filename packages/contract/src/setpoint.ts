// Setpoint downlinks and their acknowledgements (CONTRACT.md §3).

export interface SetpointCommand {
  type: 'setpoint'
  id: string
  name: string
  value: number
  /** Epoch seconds. */
  issuedAt: number
}

/**
 * `t`: the device's time of applying or rejecting, epoch seconds (CONTRACT.md §3, v1.1); absent
 * when the device did not say, and then the time of its latest accepted reading stands in.
 */
export type SetpointAck =
  | { id: string; status: 'applied'; t?: number }
  | { id: string; status: 'rejected'; reason: string; t?: number }

export function encodeSetpointCommand(command: SetpointCommand): Buffer {
  return Buffer.from(JSON.stringify(command))
}

/** Parses a device's ack; undefined when it is not one (the caller counts it as malformed). */
export function parseSetpointAck(payload: Uint8Array): SetpointAck | undefined {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { id, status, reason, t } = value as Record<string, unknown>
  if (typeof id !== 'string' || id.length === 0 || id.length > 128) return undefined
  // A `t` that is not a finite positive number is treated as absent, not as a bad ack: the device
  // did apply or reject, and dropping its answer would fail a command that succeeded.
  const time = typeof t === 'number' && Number.isFinite(t) && t > 0 ? { t } : {}
  if (status === 'applied') return { id, status, ...time }
  if (status === 'rejected') return { id, status, reason: typeof reason === 'string' ? reason : '', ...time }
  return undefined
}

/** Parses a setpoint downlink as a device receives it; undefined when it is not one. */
export function parseSetpointCommand(payload: Uint8Array): SetpointCommand | undefined {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { type, id, name, value: setpoint, issuedAt } = value as Record<string, unknown>
  if (type !== 'setpoint' || typeof id !== 'string' || id.length === 0 || typeof name !== 'string') return undefined
  if (typeof setpoint !== 'number' || !Number.isFinite(setpoint)) return undefined
  return { type, id, name, value: setpoint, issuedAt: typeof issuedAt === 'number' ? issuedAt : 0 }
}
