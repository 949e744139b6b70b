import {
  type Bus,
  type EquipmentLive,
  encodeMessage,
  LIVE_SYNC_TOPIC,
  type LiveUpdate,
  liveTopic,
  type Unsubscribe,
} from '@plantwatt/bus'
import { decodeSenml, parseDeviceTopic, type RejectReason, UPLINK_FILTER } from '@plantwatt/contract'
import { isEquipment, LiveState, type PlantIndex, type ScopeNode } from '@plantwatt/plant'
import type { Logger } from 'pino'

export interface ProcessorOptions {
  plant: PlantIndex
  bus: Bus
  logger: Logger
  /** Wall clock in epoch ms; only the `future` rejection and the publish cadence use it. */
  now?: () => number
  /**
   * How often changed figures go to the gateway, ms. Shorter than the one-second frame cadence
   * of CONTRACT.md §5 (which the gateway enforces per subscription) so that a change waits
   * little before its frame.
   */
  publishIntervalMs?: number
}

export interface DeviceCounters {
  lastSeenMs: number
  accepted: number
  rejected: Partial<Record<RejectReason | 'wrong_site', number>>
}

export interface ProcessorStats {
  messages: number
  readingsAccepted: number
  readingsRejected: number
  /** Messages from ids that are not in the plant: counted in one sum, so that they cannot grow memory. */
  unknownDeviceMessages: number
}

/**
 * The stream processor's composition root for this slice: readings from the bus are decoded,
 * applied to the live state on event time, and the changed figures go back on the bus once a
 * second. The event-time engine, energy, carbon and alerts grow here in issue 5.
 */
export class Processor {
  readonly stats: ProcessorStats = {
    messages: 0,
    readingsAccepted: 0,
    readingsRejected: 0,
    unknownDeviceMessages: 0,
  }
  readonly devices = new Map<string, DeviceCounters>()
  private readonly state: LiveState
  private readonly now: () => number
  private readonly unsubscribes: Unsubscribe[] = []
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly options: ProcessorOptions) {
    this.state = new LiveState(options.plant)
    this.now = options.now ?? Date.now
  }

  async start(): Promise<void> {
    const { bus } = this.options
    this.unsubscribes.push(await bus.subscribe(UPLINK_FILTER, (topic, payload) => this.onUplink(topic, payload)))
    this.unsubscribes.push(await bus.subscribe(LIVE_SYNC_TOPIC, () => this.publishAll()))
    this.timer = setInterval(() => this.publishChanges(), this.options.publishIntervalMs ?? 200)
    this.timer.unref()
    // A gateway that started first asked for a sync before anyone listened: answer it now.
    this.publishAll()
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    for (const unsubscribe of this.unsubscribes.splice(0)) await unsubscribe()
  }

  /** The figures of one scope as the processor holds them now (tests, and GET /api/v1/live). */
  figures(scope: ScopeNode) {
    return this.state.figures(scope)
  }

  private onUplink(topic: string, payload: Buffer): void {
    this.stats.messages++
    const parsed = parseDeviceTopic(topic)
    if (!parsed) return
    const device = this.options.plant.device(parsed.deviceId)
    // The broker refuses unknown devices and foreign topics; a message that still arrives here
    // (an external broker misconfigured) is counted, never applied.
    if (!device) {
      this.stats.unknownDeviceMessages++
      return
    }
    const counters = this.countersOf(parsed.deviceId)
    if (device.siteId !== parsed.site) return this.count(counters, 'wrong_site')

    const nowMs = this.now()
    counters.lastSeenMs = nowMs
    const site = this.options.plant.sites.get(device.siteId)!
    const siteClock = this.state.siteClock(device.siteId)
    const decoded = decodeSenml(payload, {
      receivedAt: nowMs / 1000,
      notBefore: siteClock === undefined ? undefined : siteClock - site.maxAgeS,
    })
    for (const rejection of decoded.rejections) this.count(counters, rejection.reason)
    if (decoded.rejections.length > 0) {
      this.options.logger.debug({ deviceId: device.deviceId, rejections: decoded.rejections }, 'records rejected')
    }
    for (const reading of decoded.readings) {
      if (reading.name === 'power' && device.equipment) {
        const ratedPowerW = device.equipment.spec.ratedPowerW
        // CONTRACT.md §2 out_of_range: below −1 % or above 10 × the equipment's rating.
        if (reading.value < -0.01 * ratedPowerW || reading.value > 10 * ratedPowerW) {
          this.count(counters, 'out_of_range')
          continue
        }
      }
      counters.accepted++
      this.stats.readingsAccepted++
      this.state.observeTime(device.siteId, reading.time)
      if (reading.name === 'power') this.state.applyPower(device, reading.time, reading.value)
    }
  }

  private countersOf(deviceId: string): DeviceCounters {
    let counters = this.devices.get(deviceId)
    if (!counters) {
      counters = { lastSeenMs: 0, accepted: 0, rejected: {} }
      this.devices.set(deviceId, counters)
    }
    return counters
  }

  private count(counters: DeviceCounters, reason: keyof DeviceCounters['rejected']): void {
    counters.rejected[reason] = (counters.rejected[reason] ?? 0) + 1
    this.stats.readingsRejected++
  }

  private publishChanges(): void {
    const changes = this.state.takeChanges()
    for (const siteId of changes.sites) this.publishSite(siteId, changes.scopes.get(siteId) ?? [], false)
  }

  private publishAll(): void {
    for (const site of this.options.plant.sites.values()) {
      this.publishSite(site.node.id, site.scopes, true)
    }
  }

  private publishSite(siteId: string, scopes: ScopeNode[], full: boolean): void {
    const clockS = this.state.siteClock(siteId)
    const equipment: EquipmentLive[] = []
    for (const node of scopes) {
      if (!isEquipment(node)) continue
      equipment.push({
        scope: node.scope,
        state: this.state.equipmentState(node),
        powerW: this.state.equipmentPower(node) ?? null,
      })
    }
    const update: LiveUpdate = {
      site: siteId,
      at: clockS === undefined ? null : Math.round(clockS * 1000),
      gridGPerKWh: this.state.siteGridIntensity(siteId),
      full,
      scopes: scopes.map((node) => this.state.figures(node)),
      equipment,
    }
    this.options.bus.publish(liveTopic(siteId), encodeMessage(update)).catch((error) => {
      this.options.logger.error({ err: error, siteId }, 'publishing live figures failed')
    })
  }
}
