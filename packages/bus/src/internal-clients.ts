import { createHmac, hkdfSync } from 'node:crypto'
import {
  ALERT_ACK_TOPIC,
  ALERTS_SYNC_TOPIC,
  ALERTS_TOPIC,
  BUCKETS_FILTER,
  CARBON_TOPIC,
  LIVE_FILTER,
  LIVE_SYNC_TOPIC,
  SETPOINT_ACTION_TOPIC,
  SETPOINTS_SYNC_TOPIC,
  SETPOINTS_TOPIC,
  TUNING_TOPIC,
} from './internal-topics.ts'
import { LIVE_INTEREST_SYNC_TOPIC, LIVE_INTEREST_TOPIC } from './live-wire.ts'
import { QUERY_TOPIC, queryReplyTopic } from './queries.ts'

// plantwatt's own MQTT clients when the roles run as separate processes (docs/broker.md,
// docs/internal-bus.md): who they are, how they prove it, and what each role may do.
//
// - Their own key. PLANTWATT_INTERNAL_SECRET when set: then nothing about the device secret, which
//   fleet provisioning services also hold, opens the internal bus. Unset, the key is derived from
//   the device secret with HKDF-SHA256 under an info string of its own, so that every role of an
//   installation still finds it from what it already shares (the device secret, from the
//   environment or the shared data directory; README) and a split-mode start needs no new
//   setting. Derived or not, it is never the device-password key: device passwords are HMACs keyed
//   by the device secret itself, and knowing any number of them tells nothing about this key.
// - Per-role credentials: user name `plantwatt-{role}`, password HMAC-SHA256(internal key,
//   `plantwatt-internal/v2/{role}`) in hex. The message names the role, so one role's password is
//   never another's; a leaked gateway password cannot send device commands.
// - Their own client-id namespace, `plantwatt-{role}-{instance}`, where the instance may hold dots
//   (host names) and need not match the device-id pattern.
// - Least privilege: each role publishes and subscribes only its side of the internal bus.

export type InternalRole = 'processor' | 'gateway'
export const INTERNAL_ROLES: readonly InternalRole[] = Object.freeze(['processor', 'gateway'])

/** Instance part of an internal client id: host names (with dots) and data-dir hashes fit. */
export const INTERNAL_INSTANCE_PATTERN = /^[A-Za-z0-9._-]{1,40}$/

export function internalUsername(role: InternalRole): string {
  return `plantwatt-${role}`
}

/** The role an MQTT user name claims, or undefined for any other (a device). */
export function internalRoleOf(username: string | undefined): InternalRole | undefined {
  return INTERNAL_ROLES.find((role) => username === internalUsername(role))
}

/**
 * The internal key: `PLANTWATT_INTERNAL_SECRET` when given, else derived from the device secret
 * (HKDF-SHA256, info `plantwatt internal-client key v2`), as hex.
 */
export function internalKey(deviceSecret: string, internalSecret?: string): string {
  if (internalSecret !== undefined && internalSecret !== '') return internalSecret
  const derived = hkdfSync('sha256', deviceSecret, 'plantwatt', 'plantwatt internal-client key v2', 32)
  return Buffer.from(derived).toString('hex')
}

export function internalPassword(internalSecret: string, role: InternalRole): string {
  return createHmac('sha256', internalSecret).update(`plantwatt-internal/v2/${role}`, 'utf8').digest('hex')
}

export function internalClientId(role: InternalRole, instance: string): string {
  if (!INTERNAL_INSTANCE_PATTERN.test(instance)) {
    throw new RangeError(`"${instance}" is not an instance id (${INTERNAL_INSTANCE_PATTERN.source})`)
  }
  return `plantwatt-${role}-${instance}`
}

/** True when `clientId` is in `role`'s namespace with a well-formed instance. */
export function isInternalClientId(role: InternalRole, clientId: string): boolean {
  const prefix = `plantwatt-${role}-`
  return clientId.startsWith(prefix) && INTERNAL_INSTANCE_PATTERN.test(clientId.slice(prefix.length))
}

/** The role whose namespace `clientId` is in, or undefined (a device). */
export function internalRoleOfClientId(clientId: string): InternalRole | undefined {
  return INTERNAL_ROLES.find((role) => isInternalClientId(role, clientId))
}

const REPLY_FILTER = queryReplyTopic('+')
const UPLINKS = 'sites/+/devices/+/up'
const ACKS = 'sites/+/devices/+/ack'
const DOWNLINKS = 'sites/+/devices/+/down'

/**
 * What each role may publish and subscribe (the table of docs/internal-bus.md). The processor also
 * takes the gateway → tuner topics and sends setpoint events: the tuner runs in the processor role.
 */
export const INTERNAL_ACL: Readonly<
  Record<InternalRole, { publish: readonly string[]; subscribe: readonly string[] }>
> = Object.freeze({
  processor: {
    publish: [
      DOWNLINKS,
      LIVE_FILTER,
      LIVE_INTEREST_SYNC_TOPIC,
      BUCKETS_FILTER,
      ALERTS_TOPIC,
      SETPOINTS_TOPIC,
      REPLY_FILTER,
    ],
    subscribe: [
      UPLINKS,
      ACKS,
      LIVE_SYNC_TOPIC,
      LIVE_INTEREST_TOPIC,
      ALERTS_SYNC_TOPIC,
      ALERT_ACK_TOPIC,
      CARBON_TOPIC,
      QUERY_TOPIC,
      SETPOINTS_SYNC_TOPIC,
      SETPOINT_ACTION_TOPIC,
      TUNING_TOPIC,
    ],
  },
  gateway: {
    publish: [
      LIVE_SYNC_TOPIC,
      LIVE_INTEREST_TOPIC,
      ALERTS_SYNC_TOPIC,
      ALERT_ACK_TOPIC,
      CARBON_TOPIC,
      QUERY_TOPIC,
      SETPOINTS_SYNC_TOPIC,
      SETPOINT_ACTION_TOPIC,
      TUNING_TOPIC,
    ],
    subscribe: [LIVE_FILTER, LIVE_INTEREST_SYNC_TOPIC, BUCKETS_FILTER, ALERTS_TOPIC, SETPOINTS_TOPIC, REPLY_FILTER],
  },
})

/**
 * True when every topic `requested` can match is matched by `allowed` (MQTT 3.1.1 §4.7): a
 * subscription may name a narrower filter than the ACL's, never a wider one. A PUBLISH topic has
 * no wildcards and is its own narrowest filter.
 */
export function filterCovers(allowed: string, requested: string): boolean {
  const a = allowed.split('/')
  const r = requested.split('/')
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true
    if (i >= r.length) return false
    if (r[i] === '#') return false
    if (a[i] === '+') continue
    if (a[i] !== r[i]) return false
  }
  return a.length === r.length
}

export function internalMayPublish(role: InternalRole, topic: string): boolean {
  if (topic.includes('+') || topic.includes('#')) return false
  return INTERNAL_ACL[role].publish.some((allowed) => filterCovers(allowed, topic))
}

export function internalMaySubscribe(role: InternalRole, filter: string): boolean {
  return INTERNAL_ACL[role].subscribe.some((allowed) => filterCovers(allowed, filter))
}
