import { createHmac } from 'node:crypto'
import type { Alert, BucketFigures, BucketStep, LiveFigures } from '@plantwatt/contract'

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

/** Processor → gateway: buckets of one site that closed or were revised (CONTRACT.md §5 `buckets`). */
export function bucketsTopic(siteId: string): string {
  return `${INTERNAL_PREFIX}/buckets/${siteId}`
}
export const BUCKETS_FILTER = `${INTERNAL_PREFIX}/buckets/+`

/** Processor → gateway: alert events with their plant-wide `seq`, in order, QoS 1. */
export const ALERTS_TOPIC = `${INTERNAL_PREFIX}/alerts`

/** Gateway → processor: an operator acknowledges an alert. */
export const ALERT_ACK_TOPIC = `${INTERNAL_PREFIX}/alert-ack`

export type EquipmentStateName = 'off' | 'idle' | 'running' | 'unknown'

/** Idle thresholds in force for an equipment (CONTRACT.md §1 `idle`, §6 `GET /api/v1/plant`). */
export interface ThresholdsLive {
  origin: 'given' | 'learned' | 'none'
  offBelowW: number | null
  runAboveW: number | null
  afterS: number | null
  rule: 'output' | 'band' | null
  levelsW?: number[]
}

export interface EquipmentLive {
  scope: string
  state: EquipmentStateName
  powerW: number | null
  thresholds?: ThresholdsLive | null
}

export interface BucketUpdate {
  site: string
  /** CONTRACT.md §5 `bucket` frames without `type` and `sub`. */
  buckets: (BucketFigures & { scope: string; step: BucketStep; revision: number })[]
}

export interface AlertEvents {
  events: { seq: number; alert: Alert }[]
}

export interface AlertAckRequest {
  id: string
  /** Wall clock of the acknowledgement, ms. */
  atMs: number
  by?: string
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
