// Detection of one plant (issue 5): equipment state, idle episodes, offline devices and
// over-consumption, turned into alerts with a lifecycle and a sequenced event log. Pure: no clock,
// no I/O; event time comes in as epoch seconds on the readings (CONTRACT.md §2), alert times leave
// in ms (§5).
//
// Per site: the site clock (the latest reading time seen, or a later one the processor passes to
// advance), a reorder buffer releasing power and output readings in time order up to the watermark
// site clock − latenessS (so results depend only on the set of readings, §7), and an offline tracker
// judged on the same watermark. A power/output reading that arrives behind the watermark — later
// than §7's lateness bound — is processed as it arrives: it updates its device's latest value if it
// is newer than that, and the equipment steps at max(its time, the equipment's latest step).

import type { Alert, Reading } from '@plantwatt/contract'
import type { DeviceInfo, EquipmentNode, PlantIndex, SiteInfo } from '@plantwatt/plant'
import { type AckResult, AlertBook, type AlertBookJson, type RaiseInput } from './alert-book.ts'
import type { AnomalyTransition } from './anomaly.ts'
import { DetectionCapture } from './capture.ts'
import {
  EquipmentDetector,
  type EquipmentJson,
  type EquipmentState,
  MEASURE_OUTPUT,
  MEASURE_POWER,
  type StepResult,
  type ThresholdsInForce,
} from './equipment.ts'
import { EventLog, type Sequenced, type SinceResult } from './event-log.ts'
import type { IdleTransition } from './idle-machine.ts'
import { type DeviceStatus, type OfflineEvent, type OfflineJson, OfflineTracker } from './offline.ts'
import { type DetectionOptions, resolveOptions } from './options.ts'
import { type BufferCapture, type BufferJson, ReorderBuffer } from './reorder-buffer.ts'

/** What detection needs from the rest of the processor. */
export interface DetectionPorts {
  /**
   * Energy (Wh) and location-based CO2 (g) of a scope between two event times (s). Asked for an
   * idle clear's figures once the minute holding the episode's end is final (see HeldEvent).
   */
  energyBetween(scope: string, fromS: number, toS: number): { wh: number; co2G: number }
  /**
   * An idle span of an equipment: called at the raise with endS undefined (open since startS), and
   * at the transition that ends the episode with its end (before the clear is emitted). Accounting
   * attributes idleWh from it.
   */
  onIdleSpan(scope: string, startS: number, endS: number | undefined): void
}

/** Severity per kind: idle and offline are `warning` (waste and blindness, not danger); anomaly is
 * `warning`, or `critical` far above its baseline (a fault drawing power). */
export const SEVERITY = Object.freeze({ idle: 'warning', offline: 'warning' } as const)

/** Equipment, device slot and measurement packed into the buffer's tie-break order. */
const SLOTS = 2048
const ORDER_PER_EQUIPMENT = SLOTS * 2

/**
 * An idle alert event waiting for the figures of its clear to be final (CONTRACT.md §7 "the same
 * idle alerts under any replay speed").
 *
 * A clear's wastedWh and wastedCo2G come from accounting's 1-minute buckets: the CO2 of a minute is
 * the equipment's energy × I/E × intensity with the site's E, G and I of that minute, so it depends
 * on every device of the site in that minute. At the reading that ends the episode (released at
 * watermark = site clock − latenessS) the minute holding it is still open: how much of it has
 * arrived depends on how devices' messages interleave, so figures taken then would depend on the
 * replay speed. The clear is therefore held until the watermark has passed the end of that minute
 * (the moment accounting closes the minute's bucket: every reading of the minute is in, under the
 * lateness bound) plus latenessS more (`settleS`): an interval of a device that straddles the
 * minute's end is split into the minute only once its next reading is in, and with the watermark a
 * further latenessS on, every device that reports at least every latenessS has delivered that
 * reading. The figures are asked for then, so they are a function of the readings, and the idleWh
 * of the episode's buckets (as they are then) adds up to wastedWh.
 *
 * Trade-off: a clear is emitted up to 60 s + latenessS of event time later than §7's "at the latest
 * when the site clock passed its `at` by latenessS". `at` stays the time of the reading that ended
 * the episode; only the moment of emission moves. The live figures (`live.idle`), the equipment's
 * state and accounting's idle span follow the transition at once.
 *
 * A raise of the same equipment while its clear is held waits behind it (a held `raise`), so the
 * clear always precedes it in seq, one alert per (scope, kind) stays open, and the raise's seq
 * position is as deterministic as the clear's. That happens only for afterS < 60 s + latenessS.
 */
type HeldEvent =
  | { type: 'clear'; eq: number; dueS: number; startS: number; atS: number }
  | { type: 'raise'; eq: number; dueS: number; raise: RaiseInput }

interface SiteState {
  info: SiteInfo
  clockS: number
  /** Readings before this time have been released. */
  watermarkS: number
  buffer: ReorderBuffer
  offline: OfflineTracker
  equipment: EquipmentDetector[]
  /** Held idle events in (dueS, insertion) order; emitted once the watermark reaches dueS. */
  held: HeldEvent[]
}

export interface DetectionCheckpoint {
  format: 'plantwatt-detection'
  version: 1
  sites: {
    id: string
    clockS: number | null
    watermarkS: number | null
    buffer: BufferJson
    offline: OfflineJson
    equipment: EquipmentJson[]
    /** Absent in checkpoints written before idle clears were held: none held. */
    held?: HeldEvent[]
  }[]
  alerts: AlertBookJson
}

const fin = (x: number) => (Number.isFinite(x) ? x : null)

export class Detection {
  readonly options: Readonly<DetectionOptions>
  /** The alert book: other producers of alerts (constraint, command) raise through it too, so all
   * alerts share one `seq` (CONTRACT.md §5). */
  readonly alerts: AlertBook
  private readonly sites = new Map<string, SiteState>()
  /** Idle equipment now per scope (§5 `live.idle`): count and summed power, kept incrementally. */
  private readonly idleByScope = new Map<string, { count: number; powerW: number }>()
  private readonly idleContribW = new Map<EquipmentDetector, number>()
  private readonly popped = new Float64Array(3)
  /** The checkpoint being captured over several turns (beginCheckpoint), if any. */
  private capturing: DetectionCapture | undefined
  /** Power/output readings that arrived behind the watermark (beyond §7's lateness bound). */
  behindWatermark = 0

  constructor(
    readonly plant: PlantIndex,
    private readonly ports: DetectionPorts,
    options?: Partial<DetectionOptions>,
    log?: EventLog<Alert>,
  ) {
    this.options = resolveOptions(options)
    this.alerts = new AlertBook(log ?? new EventLog<Alert>(this.options.eventLogCapacity), this.options.flapWindowS)
    for (const info of plant.sites.values()) {
      this.sites.set(info.spec.id, {
        info,
        clockS: Number.NEGATIVE_INFINITY,
        watermarkS: Number.NEGATIVE_INFINITY,
        buffer: new ReorderBuffer(),
        offline: new OfflineTracker(info.offlineAfterS),
        held: [],
        equipment: info.equipment.map((node) => {
          if (node.spec.devices.length > SLOTS) throw new RangeError(`${node.scope}: more than ${SLOTS} devices`)
          return new EquipmentDetector(node, this.options)
        }),
      })
    }
  }

  /** One accepted reading of a device of this plant, in arrival order. */
  observe(device: DeviceInfo, reading: Reading): void {
    const site = this.sites.get(device.siteId)
    if (!site) return
    const tS = reading.time
    const late = site.offline.observe(device.deviceId, tS)
    if (late) this.offlineEvent(site, late)
    const node = device.equipment
    if (node !== undefined) {
      const measure = reading.name === 'power' ? MEASURE_POWER : reading.name === 'output' ? MEASURE_OUTPUT : -1
      if (measure >= 0) {
        const eq = site.equipment[node.index]!
        const slot = eq.slots.get(device.deviceId)
        if (slot !== undefined) {
          if (tS < site.watermarkS) {
            this.behindWatermark++
            eq.apply(slot, measure, tS, reading.value)
            this.stepped(site, eq, eq.step(tS))
            // A clear this produced is due at once when its minute is already settled.
            this.catchUp(site, site.watermarkS)
          } else site.buffer.push(tS, node.index * ORDER_PER_EQUIPMENT + slot * 2 + measure, reading.value)
        }
      }
    }
    if (tS > site.clockS) {
      site.clockS = tS
      this.release(site)
    }
  }

  /** The processor's site clock (s), when it knows a later one than the readings seen here. */
  advance(siteId: string, siteClockS: number): void {
    const site = this.sites.get(siteId)
    if (!site || !(siteClockS > site.clockS)) return
    site.clockS = siteClockS
    this.release(site)
  }

  /** Alert events since the previous call, with their seq, in the order they were appended. */
  takeAlertEvents(): Sequenced<Alert>[] {
    return this.alerts.take()
  }

  /** An operator acknowledges an alert (`atMs`: when, as the caller states it). */
  ack(alertId: string, atMs: number, by?: string): AckResult {
    return this.alerts.ack(alertId, atMs, by)
  }

  /** Alerts open now (raised or acked) within scope. */
  openAlerts(scope?: string): Alert[] {
    return this.alerts.open(scope)
  }

  /** Alerts open now within scope, each with the seq of its latest event (a replica's sync). */
  openAlertsSequenced(scope?: string): Sequenced<Alert>[] {
    return this.alerts.openSequenced(scope)
  }

  /** Held alert events after seq `after` within scope, with a gap when some were discarded. */
  alertsSince(after: number, scope?: string): SinceResult<Alert> {
    return this.alerts.log.since(after, scope)
  }

  siteClockS(siteId: string): number | undefined {
    const c = this.sites.get(siteId)?.clockS
    return c === undefined || !Number.isFinite(c) ? undefined : c
  }

  equipmentState(scope: string): EquipmentState | undefined {
    return this.equipment(scope)?.state
  }

  thresholds(scope: string): ThresholdsInForce | undefined {
    return this.equipment(scope)?.thresholds()
  }

  /** Equipment with an idle episode raised now within scope, and their power (W). */
  idleNow(scope: string): { count: number; powerW: number } {
    const v = this.idleByScope.get(scope)
    return v ? { count: v.count, powerW: v.powerW } : { count: 0, powerW: 0 }
  }

  deviceStatus(deviceId: string): DeviceStatus {
    const device = this.plant.device(deviceId)
    return device ? (this.sites.get(device.siteId)?.offline.status(deviceId) ?? 'unknown') : 'unknown'
  }

  private equipment(scope: string): EquipmentDetector | undefined {
    const node = this.plant.scope(scope)
    if (node?.level !== 'equipment') return undefined
    return this.sites.get(node.siteId)?.equipment[(node as EquipmentNode).index]
  }

  /**
   * Moves the watermark and processes, in event-time order, everything it makes certain: readings
   * before it (equipment steps), held idle events due at or before it, and offline changes due
   * before it. The three are merged by time (ties: held events, then readings, then offline
   * changes), so the alert events and their seq come out in the same order however the watermark
   * advanced — in one jump or in many small steps (replay speed, §7).
   */
  private release(site: SiteState): void {
    const w = site.clockS - site.info.latenessS
    if (!(w > site.watermarkS)) return
    site.watermarkS = w
    const out = this.popped
    let current: EquipmentDetector | undefined
    let currentT = Number.NaN
    while (site.buffer.popBefore(w, out)) {
      const tS = out[0]!
      const order = out[1]!
      const eqIndex = Math.floor(order / ORDER_PER_EQUIPMENT)
      const rest = order - eqIndex * ORDER_PER_EQUIPMENT
      const eq = site.equipment[eqIndex]!
      // All readings of one equipment at one time form one step (ordered by time, then equipment).
      if (eq !== current || tS !== currentT) {
        if (current) this.stepped(site, current, current.step(currentT))
        if (!(tS === currentT)) this.catchUp(site, tS)
        current = eq
        currentT = tS
      }
      eq.apply(rest >> 1, rest & 1, tS, out[2]!)
    }
    if (current) this.stepped(site, current, current.step(currentT))
    this.catchUp(site, w)
  }

  /** Emits held idle events with dueS ≤ x and offline changes due before x, in time order. */
  private catchUp(site: SiteState, x: number): void {
    const held = site.held
    while (held.length > 0 && held[0]!.dueS <= x) {
      const event = held.shift()!
      for (const e of site.offline.advance(event.dueS)) this.offlineEvent(site, e)
      this.emitHeld(site, event)
    }
    for (const e of site.offline.advance(x)) this.offlineEvent(site, e)
  }

  private emitHeld(site: SiteState, event: HeldEvent): void {
    if (event.type === 'raise') {
      this.alerts.raise(event.raise)
      return
    }
    const scope = site.equipment[event.eq]!.node.scope
    const energy = this.ports.energyBetween(scope, event.startS, event.atS)
    this.alerts.clear('idle', scope, undefined, event.atS, {
      durationS: event.atS - event.startS,
      wastedWh: energy.wh,
      wastedCo2G: energy.co2G,
    })
  }

  /** Adds a held event, keeping (dueS, insertion) order. */
  private hold(site: SiteState, event: HeldEvent): void {
    const held = site.held
    let i = held.length
    while (i > 0 && held[i - 1]!.dueS > event.dueS) i--
    held.splice(i, 0, event)
  }

  /** When a clear of an episode ending at atS may be emitted: see HeldEvent. */
  private clearDueS(site: SiteState, atS: number): number {
    return (Math.floor(atS / 60) + 1) * 60 + site.info.latenessS
  }

  private stepped(site: SiteState, eq: EquipmentDetector, result: StepResult | undefined): void {
    if (!result) return
    if (result.reset) this.idleTransition(site, eq, result.reset)
    if (result.idle) this.idleTransition(site, eq, result.idle)
    if (result.anomaly) this.anomalyTransition(eq, result.anomaly)
    const contrib = this.idleContribW.get(eq)
    if (contrib !== undefined && eq.powerW !== contrib) {
      this.addIdle(eq, 0, eq.powerW - contrib)
      this.idleContribW.set(eq, eq.powerW)
    }
  }

  private idleTransition(site: SiteState, eq: EquipmentDetector, t: NonNullable<IdleTransition>): void {
    const scope = eq.node.scope
    const index = eq.node.index
    if (t.type === 'raise') {
      const powerW = eq.powerW
      const raise: RaiseInput = {
        kind: 'idle',
        scope,
        sinceS: t.startS,
        atS: t.atS,
        severity: SEVERITY.idle,
        // Says which rule of §7 found it, so an operator knows what to check on the floor.
        message:
          eq.thresholds().rule === 'output'
            ? `${eq.node.name} idle: powered without producing`
            : `${eq.node.name} idle: drawing idle-level power, between its off and running levels`,
        data: { powerW },
      }
      // Behind a held clear of the same equipment, the raise waits for it (see HeldEvent).
      let last: HeldEvent | undefined
      for (const h of site.held) if (h.eq === index) last = h
      if (last) this.hold(site, { type: 'raise', eq: index, dueS: last.dueS, raise })
      else this.alerts.raise(raise)
      this.ports.onIdleSpan(scope, t.startS, undefined)
      this.idleContribW.set(eq, powerW)
      this.addIdle(eq, 1, powerW)
      return
    }
    this.ports.onIdleSpan(scope, t.startS, t.atS)
    this.hold(site, { type: 'clear', eq: index, dueS: this.clearDueS(site, t.atS), startS: t.startS, atS: t.atS })
    const contrib = this.idleContribW.get(eq) ?? 0
    this.idleContribW.delete(eq)
    this.addIdle(eq, -1, -contrib)
  }

  private anomalyTransition(eq: EquipmentDetector, t: NonNullable<AnomalyTransition>): void {
    const scope = eq.node.scope
    if (t.type === 'raise') {
      const b = t.baseline
      this.alerts.raise({
        kind: 'anomaly',
        scope,
        sinceS: t.sinceS,
        atS: t.atS,
        severity: t.critical ? 'critical' : 'warning',
        message: `${eq.node.name} draws ${Math.round(t.powerW)} W while running, baseline ${Math.round(b.medianW)} W`,
        data: { powerW: t.powerW, baselineW: b.medianW, thresholdW: b.thresholdW },
      })
      return
    }
    this.alerts.clear('anomaly', scope, undefined, t.atS, { durationS: t.atS - t.sinceS })
  }

  private offlineEvent(site: SiteState, e: OfflineEvent): void {
    const device = this.plant.device(e.deviceId)
    const scope = device?.equipment?.scope ?? site.info.node.scope
    if (e.type === 'raise') {
      this.alerts.raise({
        kind: 'offline',
        scope,
        key: e.deviceId,
        sinceS: e.sinceS,
        atS: e.atS,
        severity: SEVERITY.offline,
        message: `device ${e.deviceId} has not reported for more than ${site.info.offlineAfterS} s`,
        data: { deviceId: e.deviceId, lastSeen: Math.round(e.sinceS * 1000) },
      })
    } else {
      this.alerts.clear('offline', scope, e.deviceId, e.atS, { durationS: e.atS - e.sinceS })
    }
  }

  private addIdle(eq: EquipmentDetector, count: number, powerW: number): void {
    for (const node of eq.node.ancestors) {
      let v = this.idleByScope.get(node.scope)
      if (!v) {
        v = { count: 0, powerW: 0 }
        this.idleByScope.set(node.scope, v)
      }
      v.count += count
      // Exactly 0 when nothing is idle, whatever rounding the deltas left.
      v.powerW = v.count === 0 ? 0 : v.powerW + powerW
    }
  }

  /** All detection state as JSON (open episodes, alerts and log, learned histograms, buffers). */
  checkpoint(): DetectionCheckpoint {
    return {
      format: 'plantwatt-detection',
      version: 1,
      sites: [...this.sites.values()].map((s) => ({
        id: s.info.spec.id,
        clockS: fin(s.clockS),
        watermarkS: fin(s.watermarkS),
        buffer: s.buffer.toJSON(),
        offline: s.offline.toJSON(),
        equipment: s.equipment.map((eq) => eq.toJSON()),
        held: structuredClone(s.held),
      })),
      alerts: this.alerts.toJSON(),
    }
  }

  /**
   * The same state as checkpoint() at this moment, taken over several turns (capture.ts): this
   * turn copies the sites' state; the caller runs `slice` in later turns until it returns true, and
   * must let the capture finish (or close it) before beginning another.
   */
  beginCheckpoint(): DetectionCapture {
    if (this.capturing?.open) throw new Error('a detection checkpoint is being captured already')
    const buffers: BufferCapture[] = []
    const counts: number[] = []
    const detectors: EquipmentDetector[] = []
    const sites = [...this.sites.values()].map((s) => {
      buffers.push(s.buffer.beginCapture())
      counts.push(s.equipment.length)
      detectors.push(...s.equipment)
      return {
        id: s.info.spec.id,
        clockS: fin(s.clockS),
        watermarkS: fin(s.watermarkS),
        buffer: { t: [], k: [], v: [] },
        offline: s.offline.toJSON(),
        equipment: [],
        held: structuredClone(s.held),
      }
    })
    const checkpoint: DetectionCheckpoint = {
      format: 'plantwatt-detection',
      version: 1,
      sites,
      alerts: this.alerts.toJSON(),
    }
    this.capturing = new DetectionCapture(checkpoint, buffers, counts, detectors)
    return this.capturing
  }

  /** Detection as it was at the checkpoint; the plant must be the same model. */
  static restore(
    plant: PlantIndex,
    ports: DetectionPorts,
    checkpoint: DetectionCheckpoint,
    options?: Partial<DetectionOptions>,
  ): Detection {
    if (checkpoint?.format !== 'plantwatt-detection' || checkpoint.version !== 1) {
      throw new Error('not a plantwatt detection checkpoint')
    }
    const resolved = resolveOptions(options)
    const book = AlertBook.fromJSON(checkpoint.alerts, resolved.flapWindowS, resolved.eventLogCapacity)
    const d = new Detection(plant, ports, resolved, book.log)
    ;(d as { alerts: AlertBook }).alerts = book
    for (const json of checkpoint.sites) {
      const site = d.sites.get(json.id)
      if (!site) continue
      site.clockS = json.clockS ?? Number.NEGATIVE_INFINITY
      site.watermarkS = json.watermarkS ?? Number.NEGATIVE_INFINITY
      site.buffer.restore(json.buffer)
      site.offline.restore(json.offline, site.watermarkS)
      site.held = structuredClone(json.held ?? [])
      json.equipment.forEach((eqJson, i) => {
        const eq = site.equipment[i]
        if (!eq || eqJson.power.length !== eq.node.spec.devices.length) return
        eq.restore(eqJson)
        if (eq.idleRaised) {
          d.idleContribW.set(eq, eq.powerW)
          d.addIdle(eq, 1, eq.powerW)
        }
      })
    }
    return d
  }
}
