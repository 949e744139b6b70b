// WebSocket frames of CONTRACT.md §5. Times are epoch milliseconds on this wire.

export type Channel = 'live' | 'alerts' | 'setpoints' | 'buckets'
export const CHANNELS: readonly Channel[] = ['live', 'alerts', 'setpoints', 'buckets']
export type BucketStep = '1m' | '15m' | '1h' | '1d'
export const BUCKET_STEPS: readonly BucketStep[] = ['1m', '15m', '1h', '1d']

export interface SubscribeRequest {
  op: 'subscribe'
  id: string
  channel: Channel
  scope: string
  /** A sequence number (not a time): replay held events with seq > since. */
  since?: number
  step?: BucketStep
}

export interface UnsubscribeRequest {
  op: 'unsubscribe'
  id: string
}

export type ClientFrame = SubscribeRequest | UnsubscribeRequest

export type ErrorCode =
  | 'bad_frame'
  | 'bad_request'
  | 'unknown_scope'
  | 'forbidden'
  | 'duplicate_id'
  | 'unknown_id'
  | 'rate_limited'
  | 'not_available'

export interface ErrorFrame {
  type: 'error'
  id?: string
  code: ErrorCode
  message: string
}

export interface SubscribedFrame {
  type: 'subscribed'
  id: string
}

export interface UnsubscribedFrame {
  type: 'unsubscribed'
  id: string
}

export interface DemandFigures {
  intervalStart: number
  kW: number
  forecastKW: number
  monthPeakKW: number
}

/** The figures of one scope, as a `live` frame carries them and `GET /api/v1/live` returns them. */
export interface LiveFigures {
  scope: string
  /** The site clock the figures stand at (ms), null before the site's first reading. */
  at: number | null
  powerW: number
  energyTodayWh: number
  /** Energy setpoint tuning saved today (site's local day), where tuned equipment lie within the scope. */
  savedTodayWh?: number
  co2TodayG: number
  co2MarketTodayG: number
  gridGPerKWh: number
  pvShare: number
  idle: { count: number; powerW: number }
  demand: DemandFigures | null
}

export interface LiveFrame extends LiveFigures {
  type: 'live'
  sub: string
}

export type AlertKind = 'idle' | 'offline' | 'anomaly' | 'constraint' | 'command'
export type AlertState = 'raised' | 'cleared' | 'acked'
export type Severity = 'info' | 'warning' | 'critical'

/** An alert (CONTRACT.md §5). `at` and `since` are event times in ms. One alert keeps its id. */
export interface Alert {
  id: string
  kind: AlertKind
  state: AlertState
  severity: Severity
  scope: string
  at: number
  since: number
  message: string
  data: Record<string, unknown>
}

export type SetpointStatus = 'proposed' | 'approved' | 'sent' | 'applied' | 'rejected' | 'failed' | 'reverted' | 'held'

export interface SetpointEvent {
  id: string
  scope: string
  name: string
  from: number
  to: number
  mode: 'auto' | 'advise' | 'off'
  status: SetpointStatus
  reason: string
  at: number
}

export interface AlertFrame {
  type: 'alert'
  sub: string
  seq: number
  alert: Alert
}

export interface SetpointFrame {
  type: 'setpoint'
  sub: string
  seq: number
  event: SetpointEvent
}

/** Events after `since` that were already discarded: `from`..`to` inclusive. */
export interface GapFrame {
  type: 'gap'
  sub: string
  from: number
  to: number
}

export interface BucketFigures {
  /** The bucket's start, ms. */
  t: number
  energyWh: number
  co2G: number
  co2MarketG: number
  idleWh: number
  peakW: number
  /** PV energy counted as used by the scope (§5 optional). */
  pvWh?: number
  /** CO2 of the idle energy, location-based (§5 optional). */
  idleCo2G?: number
  /** Units produced, where equipment within the scope report an `output` counter (§5 optional). */
  outputUnits?: number
  /** Energy and CO2 saved by setpoint tuning, where tuned equipment lie within the scope (§5). */
  savedWh?: number
  savedCo2G?: number
}

export interface BucketFrame extends BucketFigures {
  type: 'bucket'
  sub: string
  scope: string
  step: BucketStep
  revision: number
}

export type ServerFrame =
  | SubscribedFrame
  | UnsubscribedFrame
  | ErrorFrame
  | LiveFrame
  | AlertFrame
  | SetpointFrame
  | GapFrame
  | BucketFrame

export type ParsedClientFrame = { ok: true; frame: ClientFrame } | { ok: false; id?: string; message: string }

const SUB_ID_MAX = 64
const SCOPE_MAX = 4 * 49 + 3

/**
 * Validates a client frame by hand: it is small and runs per frame, and the error must name
 * the offending field so a dashboard developer can fix it at once.
 */
export function parseClientFrame(text: string): ParsedClientFrame {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, message: 'frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: 'frame must be a JSON object' }
  }
  const frame = value as Record<string, unknown>
  const id = frame.id
  if (typeof id !== 'string' || id.length === 0 || id.length > SUB_ID_MAX) {
    return { ok: false, message: `"id" must be a string of 1 to ${SUB_ID_MAX} characters` }
  }
  if (frame.op === 'unsubscribe') return { ok: true, frame: { op: 'unsubscribe', id } }
  if (frame.op !== 'subscribe') return { ok: false, id, message: '"op" must be "subscribe" or "unsubscribe"' }

  const channel = frame.channel
  if (typeof channel !== 'string' || !CHANNELS.includes(channel as Channel)) {
    return { ok: false, id, message: `"channel" must be one of ${CHANNELS.join(', ')}` }
  }
  const scope = frame.scope
  if (typeof scope !== 'string' || scope.length === 0 || scope.length > SCOPE_MAX) {
    return { ok: false, id, message: '"scope" must be a scope string such as "site/area/line"' }
  }
  const request: SubscribeRequest = { op: 'subscribe', id, channel: channel as Channel, scope }
  if (frame.since !== undefined) {
    if (channel !== 'alerts' && channel !== 'setpoints') {
      return { ok: false, id, message: '"since" applies to the alerts and setpoints channels only' }
    }
    if (typeof frame.since !== 'number' || !Number.isSafeInteger(frame.since) || frame.since < 0) {
      return { ok: false, id, message: '"since" must be a sequence number ≥ 0' }
    }
    request.since = frame.since
  }
  if (channel === 'buckets') {
    if (typeof frame.step !== 'string' || !BUCKET_STEPS.includes(frame.step as BucketStep)) {
      return { ok: false, id, message: `"step" must be one of ${BUCKET_STEPS.join(', ')}` }
    }
    request.step = frame.step as BucketStep
  }
  return { ok: true, frame: request }
}
