// The processor's composition of @plantwatt/tuning (issue 15, docs/tuning.md "Composition"): the
// accepted readings and the acks of each tuned equipment's devices go to its Tuner in event-time
// order; its commands go out on the device's `down` topic; its setpoint events get a plant-wide
// `seq` (CONTRACT.md §5) and its alert requests become alerts in detection's alert book. No I/O
// here: publishing is a port, so the processor (and tests) decide where bytes go.
//
// Why a merge per equipment: a tuned oven's power comes from one device and its setpoint and
// constraint from another. Replayed at another speed (or over two connections), the two devices'
// messages interleave differently, and a tuner fed in arrival order would judge a window with or
// without a power reading that says "idle", and make different moves (§7 promises the same moves).
// So readings and acks wait here until every device of the equipment has reported past them (or
// the newest is HOLD_MS ahead: a silent device must not stop the loop), then go in time order.
// Acks do not arrive in order with their device's readings (another route through the broker):
// while the tuner awaits an answer, the later entries wait for it too (see release).

import type { Reading, SetpointAck, SetpointCommand, SetpointEvent, TuningMode } from '@plantwatt/contract'
import type { AlertBook, Sequenced } from '@plantwatt/detection'
import { EventLog, type EventLogJson } from '@plantwatt/detection'
import type { DeviceInfo, EquipmentNode, PlantIndex } from '@plantwatt/plant'
import {
  type EquipmentState,
  type Tuner,
  type TunerOptions,
  type TunerOutput,
  type TunerState,
  Tuners,
} from '@plantwatt/tuning'

/** How far the newest device of an equipment may run ahead of a silent one before its readings go on. */
export const HOLD_MS = 600_000
/** Most entries one equipment may hold waiting for its other devices; past it the oldest go on. */
export const MAX_PENDING_PER_EQUIPMENT = 20_000
/** Minutes of savings kept per equipment: two days, so that a daily bucket is summed whole. */
export const SAVED_MINUTES = 2880
/** Latest events kept per equipment for GET /api/v1/setpoints. */
export const RECENT_PER_EQUIPMENT = 50

/** One instant of one device of a tuned equipment, or one of its acks, waiting for its turn. */
interface Pending {
  t: number
  /** Index of the device in the equipment's device list: ties go in device order. */
  d: number
  /** Arrival count of the equipment: ties of one device keep arrival order. */
  n: number
  setpoint?: number
  constraint?: number
  powerW?: number
  ack?: { id: string; status: 'applied' | 'rejected'; reason?: string }
}

interface EquipmentLoopState {
  /** Latest reading time (ms) per device of the equipment, -Infinity when none yet (as null in JSON). */
  latest: (number | null)[]
  /** Entries released up to this time (ms); an entry older than it goes on at once (late). */
  releasedMs: number | null
  arrivals: number
  pending: Pending[]
  /** Latest power per device (W), in released order. */
  powerW: (number | null)[]
  state: EquipmentState
  /** The device that reports the setpoint (learned from the readings; the command goes there). */
  commandDevice: string | null
  online: boolean
  recent: Sequenced<SetpointEvent>[]
  /**
   * Energy saved per minute (epoch minute → Wh), the tuner's pieces spread in proportion to time
   * as energy is (CONTRACT.md §7); the last SAVED_MINUTES. Absent in checkpoints before it was kept.
   */
  saved?: Map<number, number>
}

export interface TuningCheckpoint {
  format: 'plantwatt-tuning'
  version: 1
  tuners: Record<string, TunerState>
  equipment: Record<string, EquipmentLoopState>
  log: EventLogJson<SetpointEvent>
  /** Open proposals: the seq of their `proposed` event. */
  open: Sequenced<SetpointEvent>[]
  stats: TuningStats
}

export interface TuningStats {
  commands: number
  events: number
  acks: number
  /** Acks that are not CONTRACT.md §3 payloads, or from a device of no tuned equipment. */
  acksRejected: number
  /** Entries that arrived after their equipment had moved past them: applied as they came. */
  late: number
  /**
   * Acks that arrived after a later reading of their own device (they take another route through
   * the broker): each still went in at its own time (see TuningLoop.release). Absent in
   * checkpoints before it was counted.
   */
  acksBehind: number
}

export interface TuningLoopOptions {
  plant: PlantIndex
  alerts: AlertBook
  /** Publishes a command on `sites/{site}/devices/{deviceId}/down`, QoS 1 (CONTRACT.md §3). */
  sendCommand: (siteId: string, deviceId: string, command: SetpointCommand) => void
  tuner?: TunerOptions
  /** Setpoint events held for `setpoints-sync` (CONTRACT.md §5: at least 10,000). */
  eventCapacity?: number
  restored?: TuningCheckpoint
}

/** Without given thresholds: off below 2 %, idle below 30 % of the rating (see equipmentStateOf). */
export const DEFAULT_OFF_SHARE = 0.02
export const DEFAULT_RUN_SHARE = 0.3

/**
 * The equipment's state from its own power, by its given idle thresholds (CONTRACT.md §1 `idle`).
 * Detection's learned thresholds move as it learns, on the site clock, which would make the
 * tuner's holds depend on replay speed (§7); without given ones, fixed shares of `ratedPowerW`
 * stand in: a line stopped with its oven warm draws a fraction of the rating and must hold the
 * tuner (its low solvent readings say nothing about the running process).
 */
export function equipmentStateOf(node: EquipmentNode, powerW: number): EquipmentState {
  const idle = node.spec.idle
  const off = idle?.offBelowW ?? DEFAULT_OFF_SHARE * node.spec.ratedPowerW
  const run = idle?.runAboveW ?? DEFAULT_RUN_SHARE * node.spec.ratedPowerW
  return powerW < off ? 'off' : powerW < run ? 'idle' : 'running'
}

interface Loop {
  node: EquipmentNode
  s: EquipmentLoopState
  /** A release of this equipment is running (a command's answer could come back into it). */
  releasing: boolean
  /** Acks among `s.pending` (derived, not checkpointed: counted again from it at a restore). */
  acksPending: number
}

export class TuningLoop {
  readonly tuners: Tuners
  readonly log: EventLog<SetpointEvent>
  readonly stats: TuningStats
  private readonly loops = new Map<string, Loop>()
  /**
   * The loops of the tuned equipment within each scope that holds any (the equipment, its line,
   * area and site: every '/' prefix of its path, as isWithinScope reads them). The processor asks
   * for every bucket it sends whether savings belong on it: a scan of all loops per bucket held
   * its loop over a second at each minute's close on the 40,000-device plant.
   */
  private readonly loopsWithin = new Map<string, Loop[]>()
  private readonly open = new Map<string, Sequenced<SetpointEvent>>()
  private pending: Sequenced<SetpointEvent>[] = []

  constructor(private readonly options: TuningLoopOptions) {
    const { plant, restored } = options
    this.tuners = new Tuners(plant.model, options.tuner, restored?.tuners)
    const capacity = options.eventCapacity ?? 10_000
    this.log = restored ? EventLog.fromJSON(restored.log, capacity) : new EventLog<SetpointEvent>(capacity)
    this.stats = { commands: 0, events: 0, acks: 0, acksRejected: 0, late: 0, acksBehind: 0, ...restored?.stats }
    for (const open of restored?.open ?? []) this.open.set(open.event.id, open)
    for (const scope of this.tuners.byScope.keys()) {
      const node = plant.scope(scope) as EquipmentNode
      const n = node.spec.devices.length
      const saved = restored?.equipment[scope]
      this.loops.set(scope, {
        node,
        releasing: false,
        acksPending: saved ? saved.pending.filter((e) => e.ack !== undefined).length : 0,
        s: saved
          ? structuredClone(saved)
          : {
              latest: new Array(n).fill(null),
              releasedMs: null,
              arrivals: 0,
              pending: [],
              powerW: new Array(n).fill(null),
              state: 'unknown',
              commandDevice: null,
              online: true,
              recent: [],
              saved: new Map(),
            },
      })
    }
    for (const [scope, loop] of this.loops) {
      for (let at = scope.indexOf('/'); ; at = scope.indexOf('/', at + 1)) {
        const within = at < 0 ? scope : scope.slice(0, at)
        let list = this.loopsWithin.get(within)
        if (list === undefined) {
          list = []
          this.loopsWithin.set(within, list)
        }
        list.push(loop)
        if (at < 0) break
      }
    }
  }

  /** Whether the device belongs to a tuned equipment (its readings and acks come here). */
  isTuned(device: DeviceInfo): boolean {
    return device.equipment !== undefined && this.loops.has(device.equipment.scope)
  }

  /** Accepted readings of one message of a device, in its order (from the reading pipeline). */
  readings(device: DeviceInfo, readings: readonly Reading[]): void {
    const node = device.equipment
    const loop = node && this.loops.get(node.scope)
    if (!loop) return
    const d = node.spec.devices.indexOf(device.deviceId)
    const tuning = node.spec.tuning!
    let entry: Pending | undefined
    const entries: Pending[] = []
    for (const reading of readings) {
      const t = Math.round(reading.time * 1000)
      if (entry === undefined || entry.t !== t) {
        entry = { t, d, n: 0 }
        entries.push(entry)
      }
      if (reading.name === 'power') entry.powerW = reading.value
      else if (reading.name === tuning.setpoint) {
        entry.setpoint = reading.value
        loop.s.commandDevice = device.deviceId
      } else if (reading.name === tuning.constraint.measure) entry.constraint = reading.value
    }
    for (const e of entries) {
      const latest = loop.s.latest[d]
      if (latest === null || latest === undefined || e.t > latest) loop.s.latest[d] = e.t
      this.enqueue(loop, e)
    }
    this.release(loop)
  }

  /**
   * A device's ack (CONTRACT.md §3), already made durable by the broker. Absent `t`: the time of
   * the device's latest accepted reading. False when it is not an ack of a tuned device (counted).
   */
  ack(device: DeviceInfo, ack: SetpointAck | undefined): boolean {
    const node = device.equipment
    const loop = node && this.loops.get(node.scope)
    if (!loop || ack === undefined) {
      this.stats.acksRejected++
      return false
    }
    this.stats.acks++
    const d = node.spec.devices.indexOf(device.deviceId)
    const latest = loop.s.latest[d]
    const t = ack.t !== undefined ? Math.round(ack.t * 1000) : (latest ?? loop.s.releasedMs ?? 0)
    if (latest !== null && latest !== undefined && t < latest) this.stats.acksBehind++
    const entry: Pending = {
      t,
      d,
      n: 0,
      ack:
        ack.status === 'applied'
          ? { id: ack.id, status: 'applied' }
          : { id: ack.id, status: 'rejected', reason: ack.reason },
    }
    this.enqueue(loop, entry)
    this.release(loop)
    return true
  }

  /** Detection's offline / back online of a device (its alert events). */
  deviceOnline(deviceId: string, online: boolean, atMs: number): void {
    const device = this.options.plant.device(deviceId)
    const loop = device?.equipment && this.loops.get(device.equipment.scope)
    if (!loop || loop.s.commandDevice !== deviceId || loop.s.online === online) return
    loop.s.online = online
    this.take(loop, this.tuners.get(loop.node.scope)!.deviceOnline(online, atMs))
  }

  /** An operator's approve or reject (`plantwatt/v1/setpoint-action`): false when no such proposal is open. */
  action(eventId: string, action: 'approve' | 'reject'): boolean {
    const tuner = this.tuners.findProposal(eventId)
    if (!tuner) return false
    const out = action === 'approve' ? tuner.approve(eventId) : tuner.reject(eventId)
    if (!out) return false
    this.take(this.loops.get(tuner.scope)!, out)
    return true
  }

  /** PUT /api/v1/tuning: every tuner at once, at each equipment's own event time. */
  setMode(mode: TuningMode | null): void {
    for (const [scope, tuner] of this.tuners.byScope) {
      const loop = this.loops.get(scope)!
      this.take(loop, tuner.setMode(mode, loop.s.releasedMs ?? 0))
    }
  }

  /** Setpoint events since the last call, with their seq. */
  takeEvents(): Sequenced<SetpointEvent>[] {
    const out = this.pending
    this.pending = []
    return out
  }

  /** Open proposals, each with the seq of its latest event (a replica's sync, CONTRACT.md §5). */
  openProposals(): Sequenced<SetpointEvent>[] {
    return [...this.open.values()].sort((a, b) => a.seq - b.seq)
  }

  /** The tuning status GET /api/v1/plant shows (through the live updates); undefined when untuned. */
  brief(scope: string): { mode: TuningMode; status: string; current: number | null } | undefined {
    const tuner = this.tuners.get(scope)
    const loop = this.loops.get(scope)
    if (!tuner || !loop) return undefined
    return {
      mode: tuner.mode,
      status: statusOf(tuner.heldReason, tuner.proposed !== null, loop.s),
      current: tuner.current,
    }
  }

  /** GET /api/v1/setpoints: each tuned equipment within `scope` as its tuner stands. */
  status(within: (scope: string) => boolean) {
    const out = []
    for (const [scope, tuner] of this.tuners.byScope) {
      if (!within(scope)) continue
      const loop = this.loops.get(scope)!
      const proposed = tuner.proposed
      out.push({
        scope,
        setpoint: tuner.tuning.setpoint,
        mode: tuner.mode,
        status: statusOf(tuner.heldReason, proposed !== null, loop.s),
        heldReason: tuner.heldReason,
        current: tuner.current,
        start: tuner.startSetpoint,
        lastGood: tuner.lastGood,
        proposed,
        moves: tuner.moves,
        savedWh: tuner.savedWh,
        history: [...loop.s.recent].reverse().map(({ seq, event }) => ({ seq, ...event })),
      })
    }
    return out
  }

  /** Whether any tuned equipment lies within `scope`. */
  hasTunedWithin(scope: string): boolean {
    return this.loopsWithin.has(scope)
  }

  /** Energy saved (Wh) by the tuned equipment within `scope` over [fromMs, toMs), whole minutes. */
  savedWh(scope: string, fromMs: number, toMs: number): number {
    const from = Math.floor(fromMs / 60_000)
    const to = Math.ceil(toMs / 60_000)
    let wh = 0
    for (const loop of this.loopsWithin.get(scope) ?? []) {
      const saved = loop.s.saved
      if (!saved || saved.size === 0) continue
      if (to - from < saved.size) {
        for (let m = from; m < to; m++) wh += saved.get(m) ?? 0
      } else for (const [m, v] of saved) if (m >= from && m < to) wh += v
    }
    return wh
  }

  checkpoint(): TuningCheckpoint {
    const equipment: Record<string, EquipmentLoopState> = {}
    for (const [scope, loop] of this.loops) equipment[scope] = structuredClone(loop.s)
    return {
      format: 'plantwatt-tuning',
      version: 1,
      tuners: this.tuners.toJSON(),
      equipment,
      log: this.log.toJSON(),
      open: this.openProposals(),
      stats: { ...this.stats },
    }
  }

  private addSaved(loop: Loop, fromMs: number, toMs: number, wh: number): void {
    loop.s.saved ??= new Map()
    const saved = loop.s.saved
    spreadSaved(saved, fromMs, toMs, wh)
    // Minutes come in nearly in order: the oldest are first in the Map's insertion order.
    const floor = Math.floor(toMs / 60_000) - SAVED_MINUTES
    for (const m of saved.keys()) {
      if (m >= floor) break
      saved.delete(m)
    }
  }

  private enqueue(loop: Loop, e: Pending): void {
    const s = loop.s
    e.n = s.arrivals++
    if (s.releasedMs !== null && e.t < s.releasedMs) {
      // Behind what already went on: it cannot go in its place any more.
      this.stats.late++
      this.apply(loop, e)
      return
    }
    // In merge order (see before); arrivals are nearly in order, so the search starts from the end.
    const list = s.pending
    let i = list.length
    while (i > 0 && before(e, list[i - 1]!)) i--
    list.splice(i, 0, e)
    if (e.ack !== undefined) loop.acksPending++
  }

  /**
   * Hands the tuner every waiting entry that can no longer be preceded by one still to come, in
   * (time, readings before acks, device, arrival) order. A device's readings arrive in its own time
   * order, so the equipment's watermark is its least recent device (or the newest less HOLD_MS). Its
   * acks do not keep that order (they take another route through the broker, and under load one
   * reaches the processor after the readings that show the new value), so while the tuner awaits an
   * answer nothing later than the command's decision goes on, until the ack arrives and takes its
   * place by its device time, or every device has passed the command's timeout (no ack came: it
   * fails there). An answered command costs the entries behind it the ack's trip, no more.
   */
  private release(loop: Loop): void {
    if (loop.releasing) return // an apply's output came back in: the running release goes on.
    loop.releasing = true
    try {
      const s = loop.s
      const tuner = this.tuners.get(loop.node.scope)!
      // One entry at a time: the limit moves as the tuner sends a command or takes an answer.
      for (;;) {
        const list = s.pending
        if (list.length === 0) return
        const e = list[0]!
        const forced = list.length > MAX_PENDING_PER_EQUIPMENT
        if (!forced && e.t > releaseLimit(tuner, watermark(s.latest), loop)) return
        list.shift()
        if (s.releasedMs === null || e.t > s.releasedMs) s.releasedMs = e.t
        if (e.ack !== undefined) loop.acksPending--
        this.apply(loop, e)
      }
    } finally {
      loop.releasing = false
    }
  }

  private apply(loop: Loop, e: Pending): void {
    const tuner = this.tuners.get(loop.node.scope)!
    const s = loop.s
    if (e.ack) {
      this.take(loop, tuner.ack({ ...e.ack, t: e.t }))
      return
    }
    let powerW: number | undefined
    if (e.powerW !== undefined) {
      s.powerW[e.d] = e.powerW
      powerW = 0
      for (const p of s.powerW) powerW += p ?? 0
      const state = equipmentStateOf(loop.node, powerW)
      if (state !== s.state) {
        s.state = state
        this.take(loop, tuner.equipmentState(state, e.t))
      }
    }
    if (e.setpoint === undefined && e.constraint === undefined && powerW === undefined) {
      this.take(loop, tuner.advance(e.t))
      return
    }
    this.take(loop, tuner.reading({ t: e.t, setpoint: e.setpoint, constraint: e.constraint, powerW }))
  }

  private take(loop: Loop, out: TunerOutput): void {
    const site = loop.node.siteId
    for (const command of out.commands) {
      const device = loop.s.commandDevice ?? loop.node.spec.devices.at(-1)!
      this.stats.commands++
      this.options.sendCommand(site, device, command)
    }
    for (const event of out.events) {
      const entry = this.log.append(event)
      this.stats.events++
      this.pending.push(entry)
      loop.s.recent.push(entry)
      if (loop.s.recent.length > RECENT_PER_EQUIPMENT) loop.s.recent.shift()
      if (event.status === 'proposed') this.open.set(event.id, entry)
      else this.open.delete(event.id)
    }
    for (const piece of out.saved) this.addSaved(loop, piece.fromMs, piece.toMs, piece.wh)
    const book = this.options.alerts
    for (const a of out.alerts) {
      if (a.state === 'raised') {
        book.raise({
          kind: a.kind,
          scope: a.scope,
          sinceS: a.since / 1000,
          atS: a.at / 1000,
          severity: a.severity,
          message: a.message,
          data: a.data,
        })
      } else book.clear(a.kind, a.scope, undefined, a.at / 1000, a.data, a.message)
    }
  }
}

/** Spreads a piece of saved energy over the minutes it covers, in proportion to time. */
function spreadSaved(saved: Map<number, number>, fromMs: number, toMs: number, wh: number): void {
  if (!(toMs > fromMs) || !Number.isFinite(wh)) return
  for (let m = Math.floor(fromMs / 60_000); m * 60_000 < toMs; m++) {
    const share = (Math.min(toMs, (m + 1) * 60_000) - Math.max(fromMs, m * 60_000)) / (toMs - fromMs)
    saved.set(m, (saved.get(m) ?? 0) + wh * share)
  }
}

/** The time every device of the equipment has reported past, or the newest less HOLD_MS. */
function watermark(latest: readonly (number | null)[]): number {
  let newest = Number.NEGATIVE_INFINITY
  let oldest = Number.POSITIVE_INFINITY
  for (const t of latest) {
    const v = t ?? Number.NEGATIVE_INFINITY
    if (v > newest) newest = v
    if (v < oldest) oldest = v
  }
  return Math.max(oldest, newest - HOLD_MS)
}

/**
 * How far entries may go on: the watermark, held at the decision while its command awaits an ack
 * that has not arrived (once it has, it waits in `pending` in its place like any entry).
 */
function releaseLimit(tuner: Tuner, until: number, loop: Loop): number {
  const awaiting = tuner.awaitingAck
  if (awaiting === null || until >= awaiting.failsAtMs) return until
  if (loop.acksPending > 0 && loop.s.pending.some((e) => e.ack?.id === awaiting.id)) return until
  return Math.min(until, awaiting.issuedMs)
}

/**
 * The merge order: time; at one time readings before acks (a device samples, then applies a
 * command: a reading at its ack's own time still shows the old value, CONTRACT.md §3); then device
 * order; then arrival (one device's ties).
 */
function before(a: Pending, b: Pending): boolean {
  if (a.t !== b.t) return a.t < b.t
  const ackA = a.ack === undefined ? 0 : 1
  const ackB = b.ack === undefined ? 0 : 1
  if (ackA !== ackB) return ackA < ackB
  return a.d < b.d || (a.d === b.d && a.n < b.n)
}

function statusOf(held: string | null, proposed: boolean, s: EquipmentLoopState): string {
  if (s.releasedMs === null) return 'waiting'
  if (proposed) return 'proposed'
  if (held !== null) return 'held'
  return 'tuning'
}
