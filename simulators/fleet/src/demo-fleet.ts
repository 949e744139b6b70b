import {
  deriveDevicePassword,
  deviceTopic,
  encodeSenmlJson,
  type PlantModel,
  type SenmlRecord,
} from '@plantwatt/contract'
import mqtt, { type MqttClient } from 'mqtt'
import { createEquipmentSim, type EquipmentSim, pvPowerW, stepEquipment } from './equipment-model.ts'
import { createRng } from './plant-generator.ts'

export interface FleetOptions {
  plant: PlantModel
  brokerUrl: string
  deviceSecret: string
  /** Seconds between a device's packs. */
  intervalS?: number
  seed?: number
  /** Wall clock in epoch ms (readings carry it as their time). */
  now?: () => number
  onError?: (error: unknown) => void
}

export interface FleetStats {
  devices: number
  packsSent: number
  publishErrors: number
}

export interface Fleet {
  readonly stats: FleetStats
  /** Devices whose MQTT session is up now. */
  connected(): number
  stop(): Promise<void>
}

interface SimDevice {
  id: string
  site: string
  /** The equipment this device meters, or undefined for site meters. */
  equipment: EquipmentSim | undefined
  /** Share of its equipment's power this device measures (sub-meters add up to the whole). */
  share: number
  role: 'equipment' | 'pv' | 'grid'
  /** The first device of an equipment also reports its production counter. */
  reportsOutput: boolean
  client: MqttClient
  energyWh: number
  nextSendMs: number
  lastSendMs: number
}

/**
 * The demo fleet behind `plantwatt up --demo`: every device of the plant is its own MQTT session
 * with its own derived password, publishing SenML packs of power and an energy counter.
 * One timer drives the whole fleet, never one per device.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const now = options.now ?? Date.now
  const random = createRng(options.seed ?? 1)
  const intervalMs = (options.intervalS ?? 5) * 1000
  const onError = options.onError ?? (() => {})
  const stats: FleetStats = { devices: 0, packsSent: 0, publishErrors: 0 }
  const equipment: EquipmentSim[] = []
  const devices: SimDevice[] = []
  const startMs = now()

  const connect = (id: string): MqttClient => {
    const client = mqtt.connect(options.brokerUrl, {
      clientId: id,
      username: id,
      password: deriveDevicePassword(options.deviceSecret, id),
      protocolVersion: 4,
      keepalive: 120,
      // Jittered reconnects, so a broker restart is not met by every device at once.
      reconnectPeriod: 1000 + Math.floor(random() * 4000),
    })
    client.on('error', onError)
    return client
  }

  for (const site of options.plant.sites) {
    const add = (id: string, role: SimDevice['role'], sim: EquipmentSim | undefined, share: number) => {
      devices.push({
        id,
        site: site.id,
        equipment: sim,
        share,
        role,
        reportsOutput: sim !== undefined && sim.spec.devices[0] === id,
        client: connect(id),
        energyWh: Math.floor(random() * 1e6),
        // Spread the first packs over one interval, as a real fleet's are.
        nextSendMs: startMs + Math.floor(random() * intervalMs),
        lastSendMs: startMs,
      })
    }
    for (const area of site.areas) {
      for (const line of area.lines) {
        for (const spec of line.equipment) {
          const sim = createEquipmentSim(spec, startMs / 1000, random)
          equipment.push(sim)
          for (const id of spec.devices) add(id, 'equipment', sim, 1 / spec.devices.length)
        }
      }
    }
    for (const id of site.meters?.pv ?? []) add(id, 'pv', undefined, 1)
    for (const id of site.meters?.grid ?? []) add(id, 'grid', undefined, 1)
  }
  stats.devices = devices.length
  // PV follows the first site's sun; the demo plant has one site.
  const clock = new Intl.DateTimeFormat('en-GB', {
    timeZone: options.plant.sites[0]?.timezone ?? 'UTC',
    hour: 'numeric',
    minute: 'numeric',
    hourCycle: 'h23',
  })
  const localHourOf = (ms: number) => {
    const [hour, minute] = clock.format(ms).split(':').map(Number)
    return (hour ?? 0) + (minute ?? 0) / 60
  }
  const pvPeakW = equipment.reduce((sum, sim) => sum + sim.spec.ratedPowerW, 0) * 0.15
  const cloudiness = random() * 0.5

  let lastTickMs = startMs
  const tick = () => {
    const nowMs = now()
    const elapsedS = (nowMs - lastTickMs) / 1000
    lastTickMs = nowMs
    for (const sim of equipment) stepEquipment(sim, nowMs / 1000, elapsedS, random)
    const consumptionW = equipment.reduce((sum, sim) => sum + sim.powerW, 0)
    const pvW = pvPowerW(localHourOf(nowMs), pvPeakW, cloudiness)
    for (const device of devices) {
      if (nowMs < device.nextSendMs || !device.client.connected) continue
      const powerW =
        device.role === 'pv'
          ? pvW
          : device.role === 'grid'
            ? consumptionW - pvW
            : device.equipment!.powerW * device.share
      device.energyWh += (Math.max(0, powerW) * (nowMs - device.lastSendMs)) / 3_600_000
      device.lastSendMs = nowMs
      device.nextSendMs += intervalMs
      const pack: SenmlRecord[] = [
        { bn: `urn:dev:imei:${device.id}:`, bt: nowMs / 1000, n: 'power', u: 'W', v: Math.round(powerW * 10) / 10 },
        { n: 'energy', u: 'Wh', s: Math.round(device.energyWh * 10) / 10 },
      ]
      if (device.reportsOutput) pack.push({ n: 'output', u: 'count', s: Math.floor(device.equipment!.output) })
      device.client.publish(deviceTopic(device.site, device.id, 'up'), encodeSenmlJson(pack), { qos: 1 }, (error) => {
        if (error) stats.publishErrors++
        else stats.packsSent++
      })
    }
  }
  const timer = setInterval(tick, 250)
  timer.unref()

  return {
    stats,
    connected: () => devices.reduce((count, device) => count + (device.client.connected ? 1 : 0), 0),
    async stop() {
      clearInterval(timer)
      await Promise.all(devices.map((device) => device.client.endAsync(true)))
    },
  }
}
