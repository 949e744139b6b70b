import { createHmac } from 'node:crypto'
import type { LiveFigures } from '@plantwatt/contract'

// Topics and messages between plantwatt's own roles (CONTRACT.md §9 leaves them to us;
// docs/internal-bus.md describes them). Devices can never publish or subscribe here: the
// broker's ACL confines each device to its own sites/{site}/devices/{id}/… topics.

export const INTERNAL_PREFIX = 'plantwatt/v1'

/** Processor → gateway: figures of the scopes of one site that changed, once a second. */
export function liveTopic(siteId: string): string {
  return `${INTERNAL_PREFIX}/live/${siteId}`
}
export const LIVE_FILTER = `${INTERNAL_PREFIX}/live/+`

/** Gateway → processor: "send me every scope's figures" (a gateway that just started). */
export const LIVE_SYNC_TOPIC = `${INTERNAL_PREFIX}/live-sync`

export type EquipmentStateName = 'off' | 'idle' | 'running' | 'unknown'

export interface EquipmentLive {
  scope: string
  state: EquipmentStateName
  powerW: number | null
}

export interface LiveUpdate {
  site: string
  /** Site clock, epoch ms; null before the site's first reading. */
  at: number | null
  gridGPerKWh: number
  /** True when `scopes` holds every scope of the site (an answer to a sync request). */
  full: boolean
  scopes: LiveFigures[]
  equipment: EquipmentLive[]
}

export function encodeMessage(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message))
}

export function decodeMessage<T>(payload: Buffer): T {
  return JSON.parse(payload.toString('utf8')) as T
}

/**
 * Credentials of plantwatt's own MQTT clients (processor, gateway) when the roles run as separate
 * processes: one user name, and a password derived from the device secret that every role of one
 * installation already shares, so there is no second secret to distribute.
 */
export const INTERNAL_USERNAME = 'plantwatt-internal'

export function internalPassword(deviceSecret: string): string {
  return createHmac('sha256', deviceSecret).update('plantwatt-internal-client/v1', 'utf8').digest('hex')
}

export function internalClientId(role: string, instance: string): string {
  return `plantwatt-${role}-${instance}`
}
