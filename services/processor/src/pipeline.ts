// The processor's per-reading path, without I/O: a device's SenML message in, the domain's state
// out. It joins the event-time energy engine (@plantwatt/accounting), detection and alerts
// (@plantwatt/detection) and the latest power per device (@plantwatt/plant's LiveState), so the
// service around it only moves bytes. Time comes in as an argument; the same messages in the same
// per-device order give the same buckets and alerts (CONTRACT.md §7), which the tests compare.

import {
  type AcceptResult,
  Accounting,
  type AccountingOptions,
  type BucketEvent,
  powerInRange,
} from '@plantwatt/accounting'
import type { Alert, LiveFigures, Reading, RejectReason } from '@plantwatt/contract'
import { decodeSenml, parseDeviceTopic } from '@plantwatt/contract'
import { Detection, type DetectionCheckpoint, type DetectionOptions, type Sequenced } from '@plantwatt/detection'
import { isEquipment, LiveState, type PlantIndex, type ScopeNode } from '@plantwatt/plant'

export type RejectionReason = RejectReason | 'wrong_site'

export interface DeviceCounters {
  /** Wall clock (ms) of the device's latest message. */
  lastSeenMs: number
  accepted: number
  /** Repeats of a reading already accepted: counted once (CONTRACT.md §2), not rejected. */
  duplicates: number
  rejected: Partial<Record<RejectionReason, number>>
  /**
   * The newest accepted reading of each measurement by event time: [epoch s, value]
   * (GET /api/v1/devices/{id}). Absent in checkpoints written before it was kept.
   */
  last?: Record<string, [number, number]>
}

export interface PipelineStats {
  messages: number
  readingsAccepted: number
  readingsDuplicate: number
  readingsRejected: number
  rejectedByReason: Partial<Record<RejectionReason, number>>
  /** Messages from ids that are not in the plant: one sum, so that they cannot grow memory. */
  unknownDeviceMessages: number
}

export interface PipelineOptions {
  accounting?: AccountingOptions
  detection?: Partial<DetectionOptions>
  /**
   * `plantwatt up --accept-old` (CONTRACT.md §7): drops the wall-clock `too_old` rule, for replaying
   * recordings older than `maxAgeS`. Times before 2^28 s (1978, RFC 8428 §4.5.3) stay refused.
   */
  acceptOld?: boolean
}

/** RFC 8428 §4.5.3: absolute times start at 2^28 s; a resolved time before it is nobody's reading. */
const EARLIEST_ABSOLUTE_S = 2 ** 28

/** Everything the pipeline must carry over a restart (see checkpoint-file.ts). */
export interface PipelineCheckpoint {
  format: 'plantwatt-processor'
  version: 1
  accounting: Uint8Array
  detection: DetectionCheckpoint
  devices: [string, DeviceCounters][]
  stats: PipelineStats
}

export class ReadingPipeline {
  readonly stats: PipelineStats = {
    messages: 0,
    readingsAccepted: 0,
    readingsDuplicate: 0,
    readingsRejected: 0,
    rejectedByReason: {},
    unknownDeviceMessages: 0,
  }
  readonly devices = new Map<string, DeviceCounters>()
  readonly accounting: Accounting
  readonly detection: Detection
  private readonly live: LiveState
  private readonly acceptOld: boolean

  constructor(
    readonly plant: PlantIndex,
    options: PipelineOptions = {},
    restored?: PipelineCheckpoint,
  ) {
    this.acceptOld = options.acceptOld === true
    this.live = new LiveState(plant)
    this.accounting = restored
      ? Accounting.restore(plant, restored.accounting, options.accounting)
      : new Accounting(plant, options.accounting)
    const accounting = this.accounting
    // Detection asks accounting for an idle episode's energy and tells it the idle spans, so that
    // `wastedWh` and each bucket's `idleWh` come from the same energy as the buckets themselves.
    const ports = {
      energyBetween(scope: string, fromS: number, toS: number) {
        const figures = accounting.energyBetween(scope, fromS, toS)
        return { wh: figures.energyWh, co2G: figures.co2G }
      },
      onIdleSpan(scope: string, startS: number, endS: number | undefined) {
        accounting.setIdleSpan(scope, startS, endS)
      },
    }
    this.detection = restored
      ? Detection.restore(plant, ports, restored.detection, options.detection)
      : new Detection(plant, ports, options.detection)
    if (restored) {
      for (const [deviceId, counters] of restored.devices) this.devices.set(deviceId, counters)
      Object.assign(this.stats, restored.stats)
      for (const site of plant.sites.keys()) {
        const clock = this.accounting.siteClock(site)
        if (clock !== undefined) this.live.observeTime(site, clock)
      }
    }
  }

  /**
   * One MQTT message on a device's `up` topic, received at wall-clock `nowMs`. Every record is
   * accepted, counted as a duplicate or rejected with a reason (CONTRACT.md §2); nothing throws.
   */
  ingest(topic: string, payload: Uint8Array, nowMs: number): void {
    this.stats.messages++
    const parsed = parseDeviceTopic(topic)
    if (parsed?.kind !== 'up') return
    const device = this.plant.device(parsed.deviceId)
    // The broker refuses unknown devices and foreign topics; a message that still arrives here
    // (an external broker misconfigured) is counted, never applied.
    if (!device) {
      this.stats.unknownDeviceMessages++
      return
    }
    const counters = this.countersOf(device.deviceId)
    counters.lastSeenMs = nowMs
    if (device.siteId !== parsed.site) return this.reject(counters, 'wrong_site')

    const site = this.plant.sites.get(device.siteId)!
    const siteClock = this.accounting.siteClock(device.siteId)
    const receivedAt = nowMs / 1000
    // CONTRACT.md §2 and §7 `too_old`: behind the site clock by more than maxAgeS, or behind the
    // wall clock at receipt by more than maxAgeS (so that one device with a reset clock cannot set
    // a fresh site's clock decades back), unless --accept-old.
    const wallFloor = this.acceptOld ? EARLIEST_ABSOLUTE_S : receivedAt - site.maxAgeS
    const decoded = decodeSenml(payload, {
      receivedAt,
      notBefore: siteClock === undefined ? wallFloor : Math.max(wallFloor, siteClock - site.maxAgeS),
    })
    for (const rejection of decoded.rejections) this.reject(counters, rejection.reason)
    const equipment = device.equipment
    const accepted: Reading[] = []
    for (const reading of decoded.readings) {
      // CONTRACT.md §2 out_of_range for power: below −1 % or above 10 × the equipment's rating.
      // Counter steps are judged by accounting, which knows the reading before in time.
      if (reading.name === 'power' && equipment && !powerInRange(equipment.spec.ratedPowerW, reading.value)) {
        this.reject(counters, 'out_of_range')
        continue
      }
      const result: AcceptResult = this.accounting.accept(device, reading)
      if (result === 'duplicate') {
        counters.duplicates++
        this.stats.readingsDuplicate++
        continue
      }
      if (result !== 'accepted') {
        this.reject(counters, result)
        continue
      }
      counters.accepted++
      this.stats.readingsAccepted++
      accepted.push(reading)
      counters.last ??= {}
      const last = counters.last
      const previous = last[reading.name]
      if (previous === undefined || reading.time >= previous[0]) last[reading.name] = [reading.time, reading.value]
    }
    // Detection after accounting has the whole message: a reading that moves the site clock may
    // release an idle clear whose figures accounting computes, and they must not depend on where in
    // a message that happened (§7).
    for (const reading of accepted) {
      this.detection.observe(device, reading)
      this.live.observeTime(device.siteId, reading.time)
      if (reading.name === 'power') this.live.applyPower(device, reading.time, reading.value)
      else if (equipment) this.live.touch(equipment)
    }
    const clock = this.accounting.siteClock(device.siteId)
    if (clock !== undefined) this.detection.advance(device.siteId, clock)
  }

  takeBucketEvents(): BucketEvent[] {
    return this.accounting.takeBucketEvents()
  }

  takeAlertEvents(): Sequenced<Alert>[] {
    return this.detection.takeAlertEvents()
  }

  /** Sites whose clock moved and scopes whose figures may have changed since the last call. */
  takeChanges(): ReturnType<LiveState['takeChanges']> {
    return this.live.takeChanges()
  }

  /** CONTRACT.md §5 `live` figures of a scope. */
  figures(node: ScopeNode): LiveFigures {
    const base = this.live.figures(node)
    const energy = this.accounting.live(node.scope, base.powerW)
    return {
      ...base,
      at: energy?.at ?? base.at,
      energyTodayWh: energy?.energyTodayWh ?? 0,
      co2TodayG: energy?.co2TodayG ?? 0,
      co2MarketTodayG: energy?.co2MarketTodayG ?? 0,
      gridGPerKWh: energy?.gridGPerKWh ?? base.gridGPerKWh,
      pvShare: energy?.pvShare ?? 0,
      idle: this.detection.idleNow(node.scope),
      demand: energy?.demand ?? null,
    }
  }

  /** An equipment's state by detection's thresholds (given or learned), and its latest power. */
  equipmentLive(node: ScopeNode) {
    if (!isEquipment(node)) return undefined
    return {
      scope: node.scope,
      state: this.detection.equipmentState(node.scope) ?? 'unknown',
      powerW: this.live.equipmentPower(node) ?? null,
      thresholds: this.detection.thresholds(node.scope) ?? null,
    }
  }

  siteClockMs(siteId: string): number | null {
    const clock = this.accounting.siteClock(siteId)
    return clock === undefined ? null : Math.round(clock * 1000)
  }

  checkpoint(): PipelineCheckpoint {
    return {
      format: 'plantwatt-processor',
      version: 1,
      accounting: this.accounting.checkpoint(),
      detection: this.detection.checkpoint(),
      devices: [...this.devices],
      stats: structuredClone(this.stats),
    }
  }

  private countersOf(deviceId: string): DeviceCounters {
    let counters = this.devices.get(deviceId)
    if (!counters) {
      counters = { lastSeenMs: 0, accepted: 0, duplicates: 0, rejected: {} }
      this.devices.set(deviceId, counters)
    }
    return counters
  }

  private reject(counters: DeviceCounters, reason: RejectionReason): void {
    counters.rejected[reason] = (counters.rejected[reason] ?? 0) + 1
    this.stats.rejectedByReason[reason] = (this.stats.rejectedByReason[reason] ?? 0) + 1
    this.stats.readingsRejected++
  }
}
