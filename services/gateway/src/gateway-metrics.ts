import { Counter, Gauge, type Registry } from 'prom-client'
import type { BucketHub } from './bucket-hub.ts'
import type { LiveHub } from './live-hub.ts'
import type { WsCounters } from './ws-connection.ts'

// The gateway's Prometheus metrics (issue 6): WebSocket clients and subscriptions, frames sent and
// dropped, clients closed for lagging, refused requests, the reliable channels' replicas. Figures
// the hubs already count are read at scrape time rather than counted twice.

export interface GatewayMetricSources {
  clients: () => number
  /** Bytes buffered for all clients together: the depth of their outgoing queues. */
  bufferedBytes: () => number
  live: LiveHub
  buckets: BucketHub
  /** What the metrics read of each reliable channel's replica. */
  replicas: Record<'alerts' | 'setpoints', { readonly lastSeq: number; readonly openCount: number }>
}

/** A counter whose value is read from `read` at scrape time. */
function countedElsewhere(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset()
      this.inc(read())
    },
  })
}

export interface GatewayCounters extends WsCounters {
  /** An HTTP request or upgrade refused with 429. */
  httpRateLimited(): void
}

export function registerGatewayMetrics(registry: Registry, sources: GatewayMetricSources): GatewayCounters {
  const registers = [registry]
  new Gauge({
    name: 'plantwatt_ws_clients',
    help: 'Open /ws connections',
    registers,
    collect() {
      this.set(sources.clients())
    },
  })
  new Gauge({
    name: 'plantwatt_ws_buffered_bytes',
    help: 'Bytes written to /ws clients and not yet taken by them, all clients together',
    registers,
    collect() {
      this.set(sources.bufferedBytes())
    },
  })
  new Gauge({
    name: 'plantwatt_ws_subscriptions',
    help: 'Subscriptions on /ws by channel',
    labelNames: ['channel'],
    registers,
    collect() {
      this.set({ channel: 'live' }, sources.live.subscriptionCount)
      this.set({ channel: 'buckets' }, sources.buckets.subscriptionCount)
    },
  })
  countedElsewhere(
    registry,
    'plantwatt_ws_live_frames_sent_total',
    'Live frames written to clients',
    () => sources.live.framesSent,
  )
  countedElsewhere(
    registry,
    'plantwatt_ws_live_frames_skipped_total',
    'Live frames not written because the client was behind (a newer frame follows)',
    () => sources.live.framesDropped,
  )
  countedElsewhere(
    registry,
    'plantwatt_ws_live_frames_held_total',
    "Live frames held for their subscription's second (at most 100 ms) when the processor's batch came",
    () => sources.live.framesHeld,
  )
  countedElsewhere(
    registry,
    'plantwatt_ws_live_frames_rephased_total',
    "Processor batches a live subscription off its site's phase let pass, to go with the next one",
    () => sources.live.framesRephased,
  )
  countedElsewhere(
    registry,
    'plantwatt_ws_bucket_frames_total',
    'Bucket frames queued for clients',
    () => sources.buckets.framesSent,
  )
  new Gauge({
    name: 'plantwatt_events_last_seq',
    help: 'Newest seq held per reliable channel',
    labelNames: ['channel'],
    registers,
    collect() {
      for (const [channel, replica] of Object.entries(sources.replicas)) this.set({ channel }, replica.lastSeq)
    },
  })
  new Gauge({
    name: 'plantwatt_events_open',
    help: 'Open alerts and pending setpoint events',
    labelNames: ['channel'],
    registers,
    collect() {
      for (const [channel, replica] of Object.entries(sources.replicas)) this.set({ channel }, replica.openCount)
    },
  })
  const lagClosed = new Counter({
    name: 'plantwatt_ws_closed_lagging_total',
    help: 'Clients closed with 1013 because they fell behind reliable events or left too many control frames unread',
    registers,
  })
  const rateLimited = new Counter({
    name: 'plantwatt_ws_rate_limited_total',
    help: 'Subscribe requests refused by the rate limit',
    registers,
  })
  const badFrames = new Counter({
    name: 'plantwatt_ws_bad_frames_total',
    help: 'Client frames refused as malformed',
    registers,
  })
  const floodClosed = new Counter({
    name: 'plantwatt_ws_closed_flooding_total',
    help: 'Clients closed with 1008 because they sent frames faster than the frame rate limit',
    registers,
  })
  const httpRateLimited = new Counter({
    name: 'plantwatt_http_rate_limited_total',
    help: 'HTTP requests and WebSocket upgrades refused with 429',
    registers,
  })
  return {
    httpRateLimited: () => httpRateLimited.inc(),
    lagClosed: () => lagClosed.inc(),
    floodClosed: () => floodClosed.inc(),
    rateLimited: () => rateLimited.inc(),
    badFrame: () => badFrames.inc(),
  }
}
