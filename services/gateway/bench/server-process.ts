// The gateway under test, in its own process (live-subscribers.ts starts it): createGateway as
// `plantwatt gateway` runs it, an MQTT client of the broker in the processor's process
// (processor-process.ts), with a generated plant and a viewer token. It answers the benchmark's
// requests over IPC (ipc.ts):
//   start {brokerUrl, devices, seed, heartbeatMs, flushOnUpdate} → port, token, scopes
//   sample {gc}   → its own CPU and memory, the gateway's counters, the fan-out rounds' cost
// Run with --expose-gc so that `sample {gc: true}` measures live memory rather than garbage.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { type Bus, createMqttBus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { TokenStore } from '@plantwatt/runtime'
import pino from 'pino'
import { Registry } from 'prom-client'
// The plant generator lives in the fleet simulator; a service may not depend on a simulator,
// so this tool (not the product) reaches it by path, as the broker's benchmark does.
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { createGateway, type Gateway } from '../src/gateway.ts'
import { serveRequests } from './ipc.ts'

export interface ServerConfig {
  /** The broker in the processor's process. */
  brokerUrl: string
  devices: number
  seed: number
  /** The gateway's ping round; its default is 30 s. */
  heartbeatMs: number
  /** Experiment, not the gateway as built: a fan-out round right after each update, instead of every 100 ms. */
  flushOnUpdate: boolean
}

export interface ServerReady {
  port: number
  token: string
  /** Scopes by level (at most 2,000 of each, spread over the plant). */
  scopes: Record<'site' | 'area' | 'line' | 'equipment', string[]>
  counts: Record<'site' | 'area' | 'line' | 'equipment', number>
  startMs: number
}

export interface ServerSample {
  wallMs: number
  cpuUs: number
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
  clients: number
  liveSubscriptions: number
  liveFramesSent: number
  liveFramesSkipped: number
  /** Batches held for a subscription's second, and let pass to join the site's phase (live-hub.ts). */
  liveFramesHeld: number
  liveFramesRephased: number
  closedLagging: number
  /** Fan-out rounds (LiveHub.flush) since start; the longest one since the previous window sample. */
  flush: { rounds: number; totalMs: number; maxMs: number }
  /** Event-loop delay since the previous window sample, ms. */
  loopDelay: { p50: number; p99: number; max: number }
}

const logger = pino({ level: 'error' }, pino.destination(2))
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
const flushStats = { rounds: 0, totalMs: 0, maxMs: 0 }
let running: { gateway: Gateway; registry: Registry; dir: string; bus: Bus } | undefined

/** Every n-th item, so a sample of the scopes is spread over the whole plant. */
function spread<T>(items: T[], max: number): T[] {
  if (items.length <= max) return items
  const step = items.length / max
  return Array.from({ length: max }, (_, k) => items[Math.floor(k * step)]!)
}

async function start(config: ServerConfig): Promise<ServerReady> {
  const plant = new PlantIndex(generatePlant({ devices: config.devices, seed: config.seed }))
  const byLevel = { site: [] as string[], area: [] as string[], line: [] as string[], equipment: [] as string[] }
  for (const node of plant.scopes.values()) byLevel[node.level].push(node.scope)

  // A clean session, as `plantwatt gateway` connects (it syncs from the processor at start).
  const bus = await createMqttBus({
    url: config.brokerUrl,
    clientId: `plantwatt-gateway-bench-${process.pid}`,
    clean: true,
    onError: (error) => logger.error({ err: error }, 'bus handler failed'),
  })
  const dir = await mkdtemp(join(tmpdir(), 'plantwatt-bench-gateway-'))
  const tokens = await TokenStore.open(dir)
  const { token } = await tokens.issue({ name: 'bench wall screens', role: 'viewer' })
  const registry = new Registry()
  const gateway = await createGateway({
    plant,
    bus,
    tokens,
    logger,
    isReady: () => true,
    registry,
    heartbeatIntervalMs: config.heartbeatMs,
    // Thousands of wall screens share one token and one address here: the per-token and
    // per-address limits (issue 12) would refuse all but the first few.
    httpRequestsPerMinute: Number.MAX_SAFE_INTEGER,
    ws: {
      maxConnectionsPerToken: Number.MAX_SAFE_INTEGER,
      maxConnectionsPerAddress: Number.MAX_SAFE_INTEGER,
      maxSubscriptionsPerToken: Number.MAX_SAFE_INTEGER,
    },
    // The experiment replaces the 100 ms rounds: a round then only ever sends the newest figures.
    ...(config.flushOnUpdate ? { liveFlushIntervalMs: 2 ** 31 - 1 } : {}),
  })
  instrument(gateway, config.flushOnUpdate)
  await gateway.start()
  const port = await gateway.listen({ host: '127.0.0.1', port: 0 })
  running = { gateway, registry, dir, bus }
  loopDelay.enable()
  return {
    port,
    token,
    scopes: {
      site: byLevel.site,
      area: byLevel.area,
      line: spread(byLevel.line, 2000),
      equipment: spread(byLevel.equipment, 2000),
    },
    counts: {
      site: byLevel.site.length,
      area: byLevel.area.length,
      line: byLevel.line.length,
      equipment: byLevel.equipment.length,
    },
    startMs: Date.now(),
  }
}

/**
 * Times each fan-out round: the gateway calls `live.flush()` on its hub object from a timer, so
 * replacing the method on that object measures every round without touching the gateway's code.
 */
function instrument(gateway: Gateway, flushOnUpdate: boolean): void {
  const hub = gateway.live
  const flush = hub.flush.bind(hub)
  hub.flush = () => {
    const started = performance.now()
    flush()
    const ms = performance.now() - started
    flushStats.rounds++
    flushStats.totalMs += ms
    if (ms > flushStats.maxMs) flushStats.maxMs = ms
  }
  if (flushOnUpdate) {
    const apply = hub.apply.bind(hub)
    hub.apply = (update) => {
      apply(update)
      hub.flush()
    }
  }
}

async function counter(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name)
  if (!metric) return 0
  const values = (await metric.get()).values
  return values.reduce((sum, value) => sum + value.value, 0)
}

/**
 * `window`: this sample ends a measuring segment, so the longest round and the loop delay start
 * afresh after it; memory samples taken in between (with `gc`) leave them alone.
 */
async function sample(request: { gc?: boolean; window?: boolean }): Promise<ServerSample> {
  if (!running) throw new Error('not started')
  if (request.gc) {
    if (!globalThis.gc) throw new Error('start the server with --expose-gc')
    // Twice: the first pass may leave objects with finalizers for the second.
    globalThis.gc()
    globalThis.gc()
  }
  const { registry } = running
  const cpu = process.cpuUsage()
  const memory = process.memoryUsage()
  const flush = { ...flushStats }
  const delay = {
    p50: loopDelay.percentile(50) / 1e6,
    p99: loopDelay.percentile(99) / 1e6,
    max: loopDelay.max / 1e6,
  }
  if (request.window) {
    flushStats.maxMs = 0
    loopDelay.reset()
  }
  return {
    wallMs: Date.now(),
    cpuUs: cpu.user + cpu.system,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    clients: await counter(registry, 'plantwatt_ws_clients'),
    liveSubscriptions: running.gateway.live.subscriptionCount,
    liveFramesSent: running.gateway.live.framesSent,
    liveFramesSkipped: running.gateway.live.framesDropped,
    liveFramesHeld: running.gateway.live.framesHeld,
    liveFramesRephased: running.gateway.live.framesRephased,
    closedLagging: await counter(registry, 'plantwatt_ws_closed_lagging_total'),
    flush,
    loopDelay: delay,
  }
}

async function shutdown(): Promise<void> {
  setTimeout(() => process.exit(0), 10_000).unref()
  if (running) {
    const { gateway, dir, bus } = running
    running = undefined
    await gateway.close().catch(() => {})
    await bus.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
  process.exit(0)
}

serveRequests({ start, sample }, () => void shutdown())
