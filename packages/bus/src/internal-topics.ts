import type { Alert, BucketFigures, BucketStep, SetpointEvent, SiteCarbon } from '@plantwatt/contract'

// Topics and messages between plantwatt's own roles (CONTRACT.md §9 leaves them to us;
// docs/internal-bus.md describes them). Devices can never publish or subscribe here: the
// broker's ACL confines each device to its own sites/{site}/devices/{id}/… topics.

export const INTERNAL_PREFIX = 'plantwatt/v1'

/**
 * Processor → gateway: a `LiveBatch` (CBOR, live-wire.ts): the site clock and the figures of the
 * watched scopes of one site that changed, each scope at most once a second.
 */
export function liveTopic(siteId: string): string {
  return `${INTERNAL_PREFIX}/live/${siteId}`
}
export const LIVE_FILTER = `${INTERNAL_PREFIX}/live/+`

/** Gateway → processor: "send every watched scope's figures now" (kept for older gateways; a gateway now announces its interests, live-wire.ts). */
export const LIVE_SYNC_TOPIC = `${INTERNAL_PREFIX}/live-sync`

/** Processor → gateway: buckets of one site that closed or were revised (CONTRACT.md §5 `buckets`). */
export function bucketsTopic(siteId: string): string {
  return `${INTERNAL_PREFIX}/buckets/${siteId}`
}
export const BUCKETS_FILTER = `${INTERNAL_PREFIX}/buckets/+`

/** Processor → gateway: alert events with their plant-wide `seq`, in order, QoS 1. */
export const ALERTS_TOPIC = `${INTERNAL_PREFIX}/alerts`

/**
 * Gateway → processor: "send the held alert events after `after`, and the open alerts" (a gateway
 * that just started, or that saw a hole in the seq). The answer comes on ALERTS_TOPIC with `sync`.
 */
export const ALERTS_SYNC_TOPIC = `${INTERNAL_PREFIX}/alerts-sync`

/** Gateway → processor: an operator acknowledges an alert. */
export const ALERT_ACK_TOPIC = `${INTERNAL_PREFIX}/alert-ack`

/** Tuner → gateway: setpoint events with their plant-wide `seq`, in order, QoS 1 (CONTRACT.md §5). */
export const SETPOINTS_TOPIC = `${INTERNAL_PREFIX}/setpoints`
/** Gateway → tuner: as ALERTS_SYNC_TOPIC, for setpoint events. */
export const SETPOINTS_SYNC_TOPIC = `${INTERNAL_PREFIX}/setpoints-sync`
/** Gateway → tuner: an operator approves or rejects a proposal. */
export const SETPOINT_ACTION_TOPIC = `${INTERNAL_PREFIX}/setpoint-action`
/** Gateway → tuner: the tuning mode of every tuner at once (PUT /api/v1/tuning). */
export const TUNING_TOPIC = `${INTERNAL_PREFIX}/tuning`
/** Gateway → processor: a site's new carbon figures (PUT /api/v1/sites/{site}/carbon). */
export const CARBON_TOPIC = `${INTERNAL_PREFIX}/carbon`

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
  /** A tuned equipment's tuner: mode, status (waiting, tuning, proposed, held), current setpoint. */
  tuning?: { mode: 'auto' | 'advise' | 'off'; status: string; current: number | null }
}

export interface BucketUpdate {
  site: string
  /** CONTRACT.md §5 `bucket` frames without `type` and `sub`. */
  buckets: (BucketFigures & { scope: string; step: BucketStep; revision: number })[]
}

/** The answer to a sync request: what the sender holds, so a replica can rebuild from it. */
export interface SyncAnswer<T> {
  /** The request's `after`: `events` are the held ones after it. */
  after: number
  /** Oldest seq the sender still holds (lastSeq + 1 when none): older ones are gone for good. */
  firstHeldSeq: number
  lastSeq: number
  /**
   * Open now (alerts raised or acked; setpoint proposals not yet settled), each with the seq of its
   * latest event. Only on the last message of an answer: its arrival completes the sync.
   */
  open?: { seq: number; event: T }[]
}

export interface AlertEvents {
  events: { seq: number; alert: Alert }[]
  sync?: SyncAnswer<Alert>
}

export interface SyncRequest {
  after: number
}

/** Events in one message of a sync answer, at most. */
export const SYNC_EVENTS_PER_MESSAGE = 1000

/**
 * A sync answer of either event channel (alerts, setpoints), cut into messages of at most
 * SYNC_EVENTS_PER_MESSAGE events: always at least one message, `open` only on the last, whose
 * arrival completes the sync. `after` is taken from the request; a bad one means "everything held".
 */
export function syncAnswerMessages<E, T, M>(
  request: Partial<SyncRequest> | undefined,
  log: { firstHeldSeq: number; lastSeq: number; since: (after: number) => readonly E[] },
  open: () => { seq: number; event: T }[],
  toMessage: (events: E[], sync: SyncAnswer<T>) => M,
): M[] {
  const asked = request?.after
  const after = typeof asked === 'number' && Number.isSafeInteger(asked) && asked >= 0 ? asked : 0
  const held = log.since(after)
  const chunks = Math.max(1, Math.ceil(held.length / SYNC_EVENTS_PER_MESSAGE))
  const messages: M[] = []
  for (let c = 0; c < chunks; c++) {
    const events = held.slice(c * SYNC_EVENTS_PER_MESSAGE, (c + 1) * SYNC_EVENTS_PER_MESSAGE)
    const sync: SyncAnswer<T> = { after, firstHeldSeq: log.firstHeldSeq, lastSeq: log.lastSeq }
    if (c === chunks - 1) sync.open = open()
    messages.push(toMessage(events, sync))
  }
  return messages
}

export interface SetpointEvents {
  events: { seq: number; event: SetpointEvent }[]
  sync?: SyncAnswer<SetpointEvent>
}

export interface SetpointActionRequest {
  id: string
  action: 'approve' | 'reject'
  atMs: number
  by?: string
}

export interface TuningRequest {
  mode: 'auto' | 'advise' | 'off'
  atMs: number
  by?: string
}

export interface CarbonRequest {
  site: string
  carbon: SiteCarbon
  by?: string
}

export interface AlertAckRequest {
  id: string
  /** Wall clock of the acknowledgement, ms. */
  atMs: number
  by?: string
}

export function encodeMessage(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message))
}

export function decodeMessage<T>(payload: Buffer): T {
  return JSON.parse(payload.toString('utf8')) as T
}
