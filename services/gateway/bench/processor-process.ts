// The processor's side of the gateway benchmark, in its own process (live-subscribers.ts starts
// it): the split layout of `plantwatt broker` + `plantwatt processor` + `plantwatt gateway`, with
// the broker's aedes on a TCP port in this process and the gateway a separate MQTT client of it.
// Live figures go through the processor's LivePublisher from a synthetic source (feeders.ts);
// alert events come from the alert feeder. It answers the benchmark over IPC (ipc.ts):
//   start {devices, seed, feedIntervalMs, equipmentShare} → {brokerUrl}
//   sample {} → its CPU, memory and the live publisher's counters
//   alerts {ratePerS, prefill} → starts the alert events of the stalled-client phase
//   lastSeq {} → the alerts' last seq

import { createServer, type Server } from 'node:net'
import { createAedesBus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { Aedes } from 'aedes'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { AlertFeeder, LiveFeeder } from './feeders.ts'
import { serveRequests } from './ipc.ts'

export interface ProcessorConfig {
  devices: number
  seed: number
  feedIntervalMs: number
  equipmentShare: number
}

export interface ProcessorSample {
  wallMs: number
  cpuUs: number
  rss: number
  /** CPU of the publish rounds alone, µs. */
  publishCpuUs: number
  batches: number
  bytes: number
  scopesSent: number
  watched: number
  /** Gateways the publisher knows, forgot for a lapsed lease, and full sets it asked for. */
  gateways: number
  expiredGateways: number
  resyncs: number
  alertsLastSeq: number
}

let running: { broker: Aedes; server: Server; live: LiveFeeder; alerts: AlertFeeder; plant: PlantIndex } | undefined

async function start(config: ProcessorConfig): Promise<{ brokerUrl: string }> {
  const plant = new PlantIndex(generatePlant({ devices: config.devices, seed: config.seed }))
  const broker = await Aedes.createBroker()
  const server = createServer(broker.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const bus = createAedesBus(broker)
  const live = new LiveFeeder(bus, plant, { intervalMs: config.feedIntervalMs, equipmentShare: config.equipmentShare })
  const alerts = new AlertFeeder(bus)
  await alerts.listen()
  await live.start()
  running = { broker, server, live, alerts, plant }
  return { brokerUrl: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}` }
}

function sample(): ProcessorSample {
  if (!running) throw new Error('not started')
  const cpu = process.cpuUsage()
  const { live, alerts } = running
  return {
    wallMs: Date.now(),
    cpuUs: cpu.user + cpu.system,
    rss: process.memoryUsage().rss,
    publishCpuUs: live.cpuUs,
    batches: live.updates,
    bytes: live.bytes,
    scopesSent: live.scopesSent,
    watched: live.watched,
    ...live.interestCounters(),
    alertsLastSeq: alerts.lastSeq,
  }
}

function startAlerts(request: { ratePerS: number; prefill: number }): { lastSeq: number } {
  if (!running) throw new Error('not started')
  const equipment = [...running.plant.scopes.values()].filter((node) => node.level === 'equipment')
  running.alerts.start({
    ratePerS: request.ratePerS,
    intervalMs: 200,
    capacity: 10_000,
    scopes: equipment.map((node) => node.scope),
    prefill: request.prefill,
  })
  return { lastSeq: running.alerts.lastSeq }
}

async function shutdown(): Promise<void> {
  setTimeout(() => process.exit(0), 10_000).unref()
  if (running) {
    const { broker, server, live, alerts } = running
    running = undefined
    await live.stop()
    await alerts.stop()
    server.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  }
  process.exit(0)
}

serveRequests(
  { start, sample, alerts: startAlerts, lastSeq: () => running?.alerts.lastSeq ?? 0 },
  () => void shutdown(),
)
