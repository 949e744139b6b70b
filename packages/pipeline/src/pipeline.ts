// The processor's per-reading path, without I/O: a device's SenML message in, the domain's state
// out. It joins the event-time energy engine (@plantwatt/accounting), detection and alerts
// (@plantwatt/detection) and the latest power per device (@plantwatt/plant's LiveState), so the
// service around it only moves bytes. Time comes in as an argument; the same messages in the same
// per-device order give the same buckets and alerts (CONTRACT.md §7), which the tests compare.

import {
  type AcceptResult,
  Accounting,
  type AccountingOptions,
  type AccountingSnapshot,
  type AccountingState,
  type BucketEvent,
  type ColumnWrite,
  powerInRange,
  type ReadingLogCapture,
} from '@plantwatt/accounting'
import type { Alert, DecodedPack, LiveFigures, Reading, RejectReason } from '@plantwatt/contract'
import { decodeSenml, parseDeviceTopic } from '@plantwatt/contract'
import {
  Detection,
  type DetectionCapture,
  type DetectionCheckpoint,
  type DetectionOptions,
  type Sequenced,
} from '@plantwatt/detection'
import { type DeviceInfo, isEquipment, LiveState, type PlantIndex, type ScopeNode } from '@plantwatt/plant'
import { DeviceCountersCapture } from './device-capture.ts'
import { DEFAULT_MAX_PROCESS_NAMES, isCountedName, namesToForget } from './device-names.ts'
import { wallFloor } from './wall-floor.ts'

/** The decoder's reasons, a device under the wrong site, and a name past the bound (§2). */
export type RejectionReason = RejectReason | 'wrong_site' | 'too_many_names'

export interface DeviceCounters {
  /** Wall clock (ms) of the device's latest message. */
  lastSeenMs: number
  accepted: number
  /** Repeats of a reading already accepted: counted once (CONTRACT.md §2), not rejected. */
  duplicates: number
  rejected: Partial<Record<RejectionReason, number>>
  /**
   * The newest accepted reading of each measurement by event time: [epoch s, value]
   * (GET /api/v1/devices/{id}). A Map: names come from devices (`a:__proto__` is a valid one).
   * Absent in checkpoints written before it was kept, a plain object in those before issue 12.
   * Bounded by the names a device may hold (device-names.ts).
   */
  last?: Map<string, [number, number]>
  /**
   * The counted process-variable names the device holds (device-names.ts), each with the event
   * time of its newest accepted reading: at most `maxProcessNames`.
   */
  names?: Map<string, number>
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
  /** Most distinct process-variable names per device (CONTRACT.md §2, default 16). */
  maxProcessNames?: number
}

/** Everything the pipeline must carry over a restart (see checkpoint-file.ts). */
export interface PipelineCheckpoint {
  format: 'plantwatt-processor'
  version: 1
  accounting: Uint8Array
  detection: DetectionCheckpoint
  devices: [string, DeviceCounters][]
  stats: PipelineStats
}

/**
 * The pipeline's state without accounting's 1-minute ring (issue 13): written with the ring's
 * changed columns in one transaction of the processor's state store (state-store.ts).
 */
export interface PipelineState {
  format: 'plantwatt-processor-state'
  version: 1
  accounting: AccountingState
  detection: DetectionCheckpoint
  /** Null where taken over several turns (snapshotSliced): put back before a restore. */
  devices: [string, DeviceCounters][] | null
  stats: PipelineStats
}

export interface PipelineSnapshot {
  state: PipelineState
  columns: ColumnWrite[]
  /** Accounting's snapshot generation (Accounting.coldCommitted). */
  generation: number
  /** The reading log's chunk to write with the state, and the chunks it lets go. */
  readings: AccountingSnapshot['readings']
  /** Output minutes' columns changed since the previous snapshot. */
  outputColumns: AccountingSnapshot['outputColumns']
}

/**
 * A PipelineSnapshot whose detection state is taken over later turns by `capture`, and the reading
 * log's chunk and series' state by `readings` (the state's `accounting.devices` is then null).
 */
export interface SlicedPipelineSnapshot extends Omit<PipelineSnapshot, 'state' | 'readings'> {
  state: Omit<PipelineState, 'detection' | 'devices'> & { detection: null; devices: null }
  readings: ReadingLogCapture
  /** The per-device counters (device-capture.ts; the state's `devices` is then null). */
  devices: DeviceCountersCapture
  capture: DetectionCapture
}

/**
 * A state to restore from, with the persisted columns of the ring (undefined: none, zeros) and
 * the reading log's chunks (by generation, oldest first; absent: none).
 */
export interface RestoredPipelineState {
  state: PipelineState
  column: (site: string, minute: number) => Uint8Array | undefined
  readings?: () => Iterable<[number, Uint8Array]>
  /** A minute's persisted output column (undefined: none). */
  outputColumn?: (site: string, minute: number) => Uint8Array | undefined
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
  /** Per device of the plant (never for unknown ids), so bounded by the plant model. */
  readonly devices = new Map<string, DeviceCounters>()
  readonly accounting: Accounting
  readonly detection: Detection
  /**
   * Told each message's accepted readings of a device, in the device's order, after accounting and
   * detection had them (the tuning loop listens: services/processor/src/tuning-loop.ts).
   */
  onAccepted: ((device: DeviceInfo, readings: readonly Reading[]) => void) | undefined
  private readonly live: LiveState
  private readonly acceptOld: boolean
  private readonly maxProcessNames: number
  /** The per-device counters being captured over several turns (snapshotSliced), if any. */
  private devicesCapture: DeviceCountersCapture | undefined

  constructor(
    readonly plant: PlantIndex,
    options: PipelineOptions = {},
    restored?: PipelineCheckpoint | RestoredPipelineState,
  ) {
    this.acceptOld = options.acceptOld === true
    this.maxProcessNames = options.maxProcessNames ?? DEFAULT_MAX_PROCESS_NAMES
    if (!Number.isInteger(this.maxProcessNames) || this.maxProcessNames < 0) {
      throw new RangeError('maxProcessNames must be a non-negative integer')
    }
    this.live = new LiveState(plant)
    const saved = restored === undefined ? undefined : 'state' in restored ? restored.state : restored
    if (restored === undefined) this.accounting = new Accounting(plant, options.accounting)
    else if ('state' in restored) {
      this.accounting = Accounting.restoreFrom(
        plant,
        restored.state.accounting,
        restored.column,
        options.accounting,
        restored.readings,
        restored.outputColumn,
      )
    } else this.accounting = Accounting.restore(plant, restored.accounting, options.accounting)
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
    this.detection = saved
      ? Detection.restore(plant, ports, saved.detection, options.detection)
      : new Detection(plant, ports, options.detection)
    if (saved) {
      if (saved.devices === null) throw new TypeError('pipeline state without its device counters')
      for (const [deviceId, counters] of saved.devices) {
        const device = plant.device(deviceId)
        if (device === undefined) continue
        this.devices.set(deviceId, counters)
        this.restoreNameBound(device, counters)
        // The newest power reading by event time is what live power shows (§5): restored with the
        // device's newest readings, so it does not read 0 until the device reports again.
        const power = counters.last?.get('power')
        if (power !== undefined) this.live.applyPower(device, power[0], power[1])
      }
      Object.assign(this.stats, saved.stats)
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
    this.ingestMessage(topic, nowMs, (siteId, siteFloor) => {
      const receivedAt = nowMs / 1000
      const notBefore = Math.max(wallFloor(this.plant, siteId, receivedAt, this.acceptOld), siteFloor)
      return decodeSenml(payload, { receivedAt, notBefore })
    })
  }

  /**
   * The same message decoded where it was received (uplink-decode.ts: a broker worker of `up
   * --workers N`), validated against the wall clock already; the site clock's `too_old` floor, the
   * decode's last check, is applied here. Counts and applies exactly as `ingest` of its payload.
   */
  ingestDecoded(topic: string, pack: DecodedPack, nowMs: number): void {
    this.ingestMessage(topic, nowMs, (_siteId, siteFloor) => {
      if (!pack.readings.some((reading) => reading.time < siteFloor)) return pack
      const readings: Reading[] = []
      const rejections = [...pack.rejections]
      for (const reading of pack.readings) {
        if (reading.time < siteFloor) rejections.push({ index: -1, reason: 'too_old', detail: '' })
        else readings.push(reading)
      }
      return { readings, rejections }
    })
  }

  private ingestMessage(
    topic: string,
    nowMs: number,
    decode: (siteId: string, siteFloor: number) => DecodedPack,
  ): void {
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
    // CONTRACT.md §2 and §7 `too_old`: behind the site clock by more than maxAgeS, or behind the
    // wall clock at receipt by more than maxAgeS (so that one device with a reset clock cannot set
    // a fresh site's clock decades back), unless --accept-old.
    const decoded = decode(device.siteId, siteClock === undefined ? Number.NEGATIVE_INFINITY : siteClock - site.maxAgeS)
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
      const counted = isCountedName(reading.name, equipment)
      if (counted && !counters.names?.has(reading.name) && !this.roomForName(device, counters, site.maxAgeS)) {
        this.reject(counters, 'too_many_names')
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
      counters.last ??= new Map()
      const previous = counters.last.get(reading.name)
      if (previous === undefined || reading.time >= previous[0])
        counters.last.set(reading.name, [reading.time, reading.value])
      if (counted) {
        counters.names ??= new Map()
        const seen = counters.names.get(reading.name)
        if (seen === undefined || reading.time > seen) counters.names.set(reading.name, reading.time)
      }
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
    if (accepted.length > 0) this.onAccepted?.(device, accepted)
  }

  /** Buckets closed or revised since the last call; `settle`: sites whose held revisions go out now. */
  takeBucketEvents(settle?: ReadonlySet<string>): BucketEvent[] {
    return this.accounting.takeBucketEvents(settle)
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

  /**
   * The state for the processor's state store and the ring's columns changed since the previous
   * snapshot (all held ones when `full`). Synchronous: the caller pairs it with a journal position.
   */
  snapshot(full = false): PipelineSnapshot {
    const snapshot = this.snapshotWithout(full)
    snapshot.readings.slice(() => true)
    return {
      ...snapshot,
      state: {
        ...snapshot.state,
        accounting: { ...snapshot.state.accounting, devices: snapshot.readings.state },
        detection: this.detection.checkpoint(),
        devices: [...this.devices],
      },
      readings: snapshot.readings.write(),
    }
  }

  /**
   * The same with detection's state left to `capture` (@plantwatt/detection capture.ts), the
   * reading log's chunk to `readings` and the per-device counters to `devices`, which the caller
   * runs over later turns of the event loop (the state then has none of the three of its own).
   * The caller must let each finish (or close it) before beginning another.
   */
  snapshotSliced(full = false): SlicedPipelineSnapshot {
    if (this.devicesCapture?.open) throw new Error('device counters are being captured already')
    const snapshot = this.snapshotWithout(full)
    this.devicesCapture = new DeviceCountersCapture(this.devices)
    return { ...snapshot, devices: this.devicesCapture, capture: this.detection.beginCheckpoint() }
  }

  private snapshotWithout(full: boolean): Omit<SlicedPipelineSnapshot, 'capture' | 'devices'> {
    const accounting = this.accounting.snapshotSliced(full)
    return {
      state: {
        format: 'plantwatt-processor-state',
        version: 1,
        accounting: accounting.state,
        detection: null,
        devices: null,
        stats: structuredClone(this.stats),
      },
      columns: accounting.columns,
      generation: accounting.generation,
      readings: accounting.readings,
      outputColumns: accounting.outputColumns,
    }
  }

  /** The whole state in the format before the state store (tests; node:v8 of it was the old file). */
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

  /**
   * DELETE /api/v1/devices/{id}/names (CONTRACT.md §2): forgets the device's counted names at once
   * (their newest readings and accounting's series). The number forgotten; undefined for an id
   * that is not a device of the plant.
   */
  forgetNames(deviceId: string): number | undefined {
    const device = this.plant.device(deviceId)
    if (device === undefined) return undefined
    const counters = this.devices.get(deviceId)
    const names = counters?.names
    if (counters === undefined || names === undefined) return 0
    this.beforeCountersChange(deviceId, counters)
    const forgotten = [...names.keys()]
    for (const name of forgotten) this.forgetName(device, counters, name)
    return forgotten.length
  }

  /**
   * Whether a device may take one more counted name: yes below the bound; at it, names unseen for
   * `maxAgeS` of site clock are forgotten first (CONTRACT.md §2) and then maybe there is room.
   */
  private roomForName(device: DeviceInfo, counters: DeviceCounters, maxAgeS: number): boolean {
    const names = counters.names
    if (names === undefined || names.size < this.maxProcessNames) return true
    const clock = this.accounting.siteClock(device.siteId)
    if (clock === undefined) return false
    for (const name of namesToForget(names, this.maxProcessNames, clock - maxAgeS)) {
      this.forgetName(device, counters, name)
    }
    return names.size < this.maxProcessNames
  }

  private forgetName(device: DeviceInfo, counters: DeviceCounters, name: string): void {
    counters.names?.delete(name)
    counters.last?.delete(name)
    this.accounting.forgetMeasurement(device.deviceId, name)
  }

  /**
   * A restored device keeps the bound (issue 12 finding 4: a checkpoint written before it could
   * hold thousands of names, and a restart kept them): `last` becomes a Map, the counted names are
   * rebuilt from it when the checkpoint has none, the newest `maxProcessNames` are kept, and every
   * other counted name is dropped from `last` and from accounting.
   */
  private restoreNameBound(device: DeviceInfo, counters: DeviceCounters): void {
    const equipment = device.equipment
    const saved = counters.last as unknown
    if (saved !== undefined && !(saved instanceof Map)) {
      counters.last = new Map(Object.entries(saved as Record<string, [number, number]>))
    }
    if (counters.names === undefined) {
      counters.names = new Map()
      for (const [name, [t]] of counters.last ?? []) if (isCountedName(name, equipment)) counters.names.set(name, t)
    }
    const names = counters.names
    for (const name of namesToForget(names, this.maxProcessNames, Number.NEGATIVE_INFINITY)) names.delete(name)
    for (const name of [...(counters.last?.keys() ?? [])]) {
      if (isCountedName(name, equipment) && !names.has(name)) counters.last!.delete(name)
    }
    for (const name of this.accounting.otherMeasurements(device.deviceId)) {
      if (isCountedName(name, equipment) && !names.has(name)) this.accounting.forgetMeasurement(device.deviceId, name)
    }
  }

  /** A device's counters, about to change (a capture running copies them first). */
  private countersOf(deviceId: string): DeviceCounters {
    let counters = this.devices.get(deviceId)
    if (!counters) {
      counters = { lastSeenMs: 0, accepted: 0, duplicates: 0, rejected: {} }
      this.devices.set(deviceId, counters)
      if (this.devicesCapture?.open) this.devicesCapture.added(deviceId)
    } else this.beforeCountersChange(deviceId, counters)
    return counters
  }

  private beforeCountersChange(deviceId: string, counters: DeviceCounters): void {
    if (this.devicesCapture?.open) this.devicesCapture.beforeChange(deviceId, counters)
  }

  private reject(counters: DeviceCounters, reason: RejectionReason): void {
    counters.rejected[reason] = (counters.rejected[reason] ?? 0) + 1
    this.stats.rejectedByReason[reason] = (this.stats.rejectedByReason[reason] ?? 0) + 1
    this.stats.readingsRejected++
  }
}
