import { deriveDevicePassword, deviceTopic, type PlantModel, parseSetpointCommand } from '@plantwatt/contract'
import mqtt, { type MqttClient } from 'mqtt'
import { PlantSimulation } from './model/index.ts'

/** Seconds between a demo device's packs. */
export const DEMO_INTERVAL_S = 5

export interface FleetOptions {
  plant: PlantModel
  brokerUrl: string
  deviceSecret: string
  /** Seconds between a device's packs (default DEMO_INTERVAL_S). */
  intervalS?: number
  /**
   * A simulation of `plant` already advanced to the wall clock (the demo's backfill of its history):
   * the devices continue it, with its counters and state, instead of starting a new one now.
   * `intervalS` and `seed` are then the simulation's own.
   */
  simulation?: PlantSimulation
  seed?: number
  /** Wall clock in epoch ms: the demo runs in real time, so readings carry the time they are sent. */
  now?: () => number
  onError?: (error: unknown) => void
}

export interface DemoFleetStats {
  devices: number
  packsSent: number
  acksSent: number
  commandsReceived: number
  publishErrors: number
}

export interface Fleet {
  readonly stats: DemoFleetStats
  /** Devices whose MQTT session is up now. */
  connected(): number
  stop(): Promise<void>
}

/**
 * The demo fleet behind `plantwatt up --demo`: the plant simulation (simulators/fleet/src/model)
 * in real time, every device its own mqtt.js session with its own derived password, listening on
 * its `down` topic for setpoint commands and acknowledging them. A few hundred devices; for a
 * whole plant the session engine (src/sessions) holds the sessions instead of mqtt.js clients.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const now = options.now ?? Date.now
  const onError = options.onError ?? (() => {})
  const stats: DemoFleetStats = { devices: 0, packsSent: 0, acksSent: 0, commandsReceived: 0, publishErrors: 0 }
  const simulation =
    options.simulation ??
    new PlantSimulation({
      plant: options.plant,
      seed: options.seed ?? 1,
      startS: now() / 1000,
      reportIntervalS: options.intervalS ?? DEMO_INTERVAL_S,
    })
  const clients = new Map<string, MqttClient>()

  for (const site of options.plant.sites) {
    const ids = [
      ...(site.meters?.pv ?? []),
      ...(site.meters?.grid ?? []),
      ...site.areas.flatMap((area) => area.lines.flatMap((line) => line.equipment.flatMap((e) => e.devices))),
    ]
    for (const id of ids) {
      const down = deviceTopic(site.id, id, 'down')
      const client = mqtt.connect(options.brokerUrl, {
        clientId: id,
        username: id,
        password: deriveDevicePassword(options.deviceSecret, id),
        protocolVersion: 4,
        keepalive: 120,
        // Jittered reconnects, so a broker restart is not met by every device at once.
        reconnectPeriod: 1000 + Math.floor(Math.random() * 4000),
      })
      client.on('connect', () => client.subscribe(down, { qos: 1 }))
      client.on('message', (_topic, payload) => {
        const command = parseSetpointCommand(payload)
        if (!command) return
        stats.commandsReceived++
        simulation.receiveCommand(id, command, now() / 1000)
      })
      client.on('error', onError)
      clients.set(id, client)
    }
  }
  stats.devices = clients.size

  const tick = () => {
    for (const message of simulation.advanceTo(now() / 1000)) {
      const client = clients.get(message.deviceId)
      if (!client) continue
      const topic = deviceTopic(message.site, message.deviceId, message.kind)
      // Payloads are views into the simulation's shared buffers: copy before mqtt.js queues them.
      client.publish(topic, Buffer.from(message.payload), { qos: 1 }, (error) => {
        if (error) stats.publishErrors++
        else if (message.kind === 'ack') stats.acksSent++
        else stats.packsSent++
      })
    }
  }
  const timer = setInterval(tick, 200)
  timer.unref()

  return {
    stats,
    connected: () => [...clients.values()].reduce((count, client) => count + (client.connected ? 1 : 0), 0),
    async stop() {
      clearInterval(timer)
      await Promise.all([...clients.values()].map((client) => client.endAsync(true)))
    },
  }
}
