// The plant simulation: pure and deterministic. Time is passed in (advanceTo), nothing reads a
// clock, touches the network or sets a timer. The same options give byte-identical messages and
// truth; a simulation restricted to `emitDevices` gives, for those devices, the same bytes as a run
// of the whole plant, because every random draw comes from a stream of its own line, device or
// site sky (rng.ts) and lines are coupled only inside themselves (line.ts).
//
// Time: a fixed grid of report intervals from startS; each line and site meter samples at its own
// phase within the interval (whole ms), and units are processed in the order of their sample times,
// so advanceTo(t) simulates exactly the samples at or before t. Messages are queued by send time;
// advanceTo returns those with startS ≤ sendAt ≤ t not returned before, ordered by sendAt, then
// device id, then the order the device sent them.
//
// What is simulated: every line that holds an emitted device (a line is the unit of coupling), and
// every PV meter emitted. A site whose grid meter is emitted is simulated whole: the grid meter reads
// its total consumption minus PV.
//
// Setpoint commands: receiveCommand queues the command at the device; it is applied at the device's
// first sample at or after tS while awake (a PSM device: its next wake), after that sample was read,
// and answered with an ack (latency applies, loss and reorder do not); readings from the next sample
// on carry the new value, and the equipment's fan follows it with its lag.

import type { Equipment, PlantModel, SetpointCommand } from '@plantwatt/contract'
import { deviceRolesOf } from '../plant-generator.ts'
import {
  DeviceSim,
  type MessageSink,
  R_ENERGY,
  R_OUTPUT,
  R_POWER,
  R_PV,
  R_SP,
  type RecordSpec,
  type ResolvedFaults,
} from './device.ts'
import { EquipmentSim, K_MACHINE, K_OVEN, Lags, processUnit } from './equipment.ts'
import { IdleDetector, type IdleEpisode } from './idle.ts'
import { LineSim, patternOf } from './line.ts'
import { MessageHeap, type OutgoingMessage, SimMessage } from './messages.ts'
import { streamRng } from './rng.ts'
import { MinuteSeries } from './series.ts'
import { MeterSim, SiteSim } from './site.ts'
import {
  type CommandRecord,
  type CounterReset,
  type FeasibleSetpoints,
  type GroundTruth,
  type IdleRuleInfo,
  minutesToJson,
  type TruthJson,
} from './truth.ts'

export interface FaultOptions {
  /** Share of devices in power-saving mode, uploading their buffered readings every batchIntervalS (±10 %). */
  psm?: { share: number; batchIntervalS: number }
  /** Network delay between measurement and transmission, mean ± jitter (uniform). */
  latency?: { meanMs: number; jitterMs: number }
  /** A message lost in the radio is retransmitted retransmitAfterS later; half of the losses give a duplicate. */
  loss?: { probability: number; retransmitAfterS: number }
  /** Messages of one device sent out of time order: held back and sent after the next one. */
  reorder?: { probability: number }
  /** Device clocks drift by up to ± this many ppm (resync on reconnect and every 6 h). */
  clockDriftPpm?: number
  /** Reboots that reset a device's energy and output counters to 0. */
  counterResets?: { perDevicePerDay: number }
  /**
   * Commands a device that reports the setpoint takes badly: with rejectProbability it refuses a
   * valid one (ack `rejected`), with unansweredProbability it neither applies nor answers it (the
   * platform's commandTimeoutS must fail it, CONTRACT.md §3).
   */
  commands?: { rejectProbability?: number; unansweredProbability?: number }
}

export interface SimulationOptions {
  plant: PlantModel
  seed: number
  /** Simulated epoch seconds at start. */
  startS: number
  /** Default 1: one pack of up to 4 records per device per interval. */
  reportIntervalS?: number
  faults?: FaultOptions
  /** Emit messages only for these devices (a worker simulates its share of the fleet); default all. */
  emitDevices?: ReadonlySet<string>
}

export type { OutgoingMessage }

type Unit = LineSim | MeterSim

function resolveFaults(faults: FaultOptions | undefined): ResolvedFaults {
  const f = faults ?? {}
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`faults: ${what}`)
  }
  const psm = f.psm
  if (psm) {
    check(psm.share >= 0 && psm.share <= 1, 'psm.share must be within 0..1')
    check(psm.batchIntervalS > 0 && Number.isFinite(psm.batchIntervalS), 'psm.batchIntervalS must be positive')
  }
  const latency = f.latency
  if (latency) {
    check(latency.meanMs >= 0 && Number.isFinite(latency.meanMs), 'latency.meanMs must be ≥ 0')
    check(latency.jitterMs >= 0 && Number.isFinite(latency.jitterMs), 'latency.jitterMs must be ≥ 0')
  }
  const loss = f.loss
  if (loss) {
    check(loss.probability >= 0 && loss.probability <= 1, 'loss.probability must be within 0..1')
    check(loss.retransmitAfterS > 0 && Number.isFinite(loss.retransmitAfterS), 'loss.retransmitAfterS must be positive')
  }
  if (f.reorder)
    check(f.reorder.probability >= 0 && f.reorder.probability <= 1, 'reorder.probability must be within 0..1')
  if (f.clockDriftPpm !== undefined)
    check(f.clockDriftPpm >= 0 && f.clockDriftPpm <= 1000, 'clockDriftPpm must be within 0..1000')
  if (f.counterResets) check(f.counterResets.perDevicePerDay >= 0, 'counterResets.perDevicePerDay must be ≥ 0')
  const reject = f.commands?.rejectProbability ?? 0
  const unanswered = f.commands?.unansweredProbability ?? 0
  check(reject >= 0 && reject <= 1, 'commands.rejectProbability must be within 0..1')
  check(unanswered >= 0 && unanswered <= 1, 'commands.unansweredProbability must be within 0..1')
  const perDay = f.counterResets?.perDevicePerDay ?? 0
  return {
    psmShare: psm?.share ?? 0,
    batchMs: Math.max(1, Math.round((psm?.batchIntervalS ?? 60) * 1000)),
    latency: latency !== undefined && (latency.meanMs > 0 || latency.jitterMs > 0),
    latencyMeanMs: latency?.meanMs ?? 0,
    latencyJitterMs: latency?.jitterMs ?? 0,
    lossProbability: loss?.probability ?? 0,
    retransmitMs: Math.max(1, Math.round((loss?.retransmitAfterS ?? 1) * 1000)),
    reorderProbability: f.reorder?.probability ?? 0,
    driftPpm: f.clockDriftPpm ?? 0,
    rebootMeanS: perDay > 0 ? 86_400 / perDay : 0,
    commandRejectProbability: reject,
    commandUnansweredProbability: unanswered,
  }
}

/** Records of one device of an equipment, by the layout of deviceRolesOf. */
function recordsOf(
  spec: Equipment,
  deviceId: string,
  processMeasure: string | undefined,
  processDevice: string | undefined,
  outputDevice: string | undefined,
): RecordSpec[] {
  const records: RecordSpec[] = []
  if (deviceId === spec.devices[0]) {
    records.push({ kind: R_POWER, name: 'power', unit: 'W' }, { kind: R_ENERGY, name: 'energy', unit: 'Wh' })
  }
  if (deviceId === outputDevice) records.push({ kind: R_OUTPUT, name: 'output', unit: 'count' })
  if (deviceId === processDevice && processMeasure !== undefined) {
    const tuning = spec.tuning
    if (tuning) records.push({ kind: R_SP, name: tuning.setpoint, unit: tuning.unit })
    records.push({ kind: R_PV, name: processMeasure, unit: processUnit(processMeasure) })
  }
  if (records.length === 0) records.push({ kind: R_PV, name: 'temperature', unit: 'Cel' })
  return records
}

export class PlantSimulation implements MessageSink {
  readonly truth: GroundTruth
  private readonly seed: number
  private readonly startMs: number
  private intervalMs: number
  /** The largest interval used (the truth's tolerance on time). */
  private maxIntervalMs: number
  /** The tick grid: tick `gridTick` starts at `gridMs`, each next one an interval later. */
  private gridMs: number
  private gridTick = 0
  private readonly units: Unit[]
  private readonly devices = new Map<string, DeviceSim>()
  private readonly truthEquipment = new Map<string, EquipmentSim>()
  private readonly truthMeters = new Map<string, MeterSim>()
  private readonly resets: CounterReset[] = []
  private readonly commandLog: CommandRecord[] = []
  private tick = 0
  private unitIndex = 0
  private horizonMs = Number.NEGATIVE_INFINITY
  private lastSampleMs = Number.NaN
  private due: SimMessage[] = []
  private readonly heap = new MessageHeap()
  private seq = 0

  constructor(options: SimulationOptions) {
    const { plant, seed } = options
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`)
    if (!Number.isFinite(options.startS)) throw new RangeError(`startS must be a finite number, got ${options.startS}`)
    const reportIntervalS = options.reportIntervalS ?? 1
    if (!(reportIntervalS > 0 && reportIntervalS <= 3600)) {
      throw new RangeError(`reportIntervalS must be within (0, 3600], got ${reportIntervalS}`)
    }
    this.seed = seed
    this.startMs = Math.round(options.startS * 1000)
    this.intervalMs = Math.max(1, Math.round(reportIntervalS * 1000))
    this.maxIntervalMs = this.intervalMs
    this.gridMs = this.startMs
    const dtMs = this.intervalMs
    const faults = resolveFaults(options.faults)
    const lags = new Lags(dtMs / 1000)
    const baseBucket = Math.floor(this.startMs / 60_000)

    // Device ranks: position in the sorted list of every device id of the plant (the tie-break of
    // message order), the same in every simulation of this plant.
    const allIds: string[] = []
    for (const site of plant.sites) {
      allIds.push(...(site.meters?.pv ?? []), ...(site.meters?.grid ?? []))
      for (const area of site.areas)
        for (const line of area.lines) for (const eq of line.equipment) allIds.push(...eq.devices)
    }
    const sortedIds = [...allIds].sort()
    const rank = new Map<string, number>()
    for (let i = 0; i < sortedIds.length; i++) rank.set(sortedIds[i]!, i)
    const emit = options.emitDevices
    if (emit) {
      for (const id of emit)
        if (!rank.has(id)) throw new RangeError(`emitDevices: device ${id} is not in the plant model`)
    }
    const emitted = (id: string) => emit === undefined || emit.has(id)

    const units: { unit: Unit; order: number }[] = []
    const addDevice = (device: DeviceSim) => this.devices.set(device.id, device)
    for (const site of plant.sites) {
      const gridIds = site.meters?.grid ?? []
      const pvIds = site.meters?.pv ?? []
      const gridEmitted = gridIds.some(emitted)
      let ratedSum = 0
      for (const area of site.areas)
        for (const line of area.lines) for (const eq of line.equipment) ratedSum += eq.ratedPowerW
      const siteSim = new SiteSim(
        site.id,
        site.timezone,
        this.startMs,
        streamRng(seed, `sky:${site.id}`),
        0.1 * ratedSum,
      )
      siteSim.trackGrid = gridEmitted
      if (gridEmitted) siteSim.importMinutes = new MinuteSeries(baseBucket)

      const meter = (id: string, kind: 'pv' | 'grid', share: number) => {
        const rng = streamRng(seed, `meter:${id}`)
        const phase = Math.floor(rng() * dtMs)
        const m = new MeterSim(
          id,
          siteSim,
          kind,
          share,
          phase,
          dtMs,
          kind === 'pv' ? siteSim.pvPeakW * share : ratedSum,
        )
        if (emitted(id)) {
          if (kind === 'pv') m.minutes = new MinuteSeries(baseBucket)
          this.truthMeters.set(id, m)
          const records: RecordSpec[] = [
            { kind: R_POWER, name: 'power', unit: 'W' },
            { kind: R_ENERGY, name: 'energy', unit: 'Wh' },
          ]
          const device = new DeviceSim(
            id,
            site.id,
            rank.get(id)!,
            m,
            undefined,
            records,
            streamRng(seed, `dev:${id}`),
            faults,
            this,
            this.startMs,
            dtMs,
          )
          m.device = device
          addDevice(device)
        }
        units.push({ unit: m, order: units.length })
      }
      for (const id of pvIds) if (emitted(id) || gridEmitted) meter(id, 'pv', 1 / pvIds.length)
      for (const id of gridIds) if (emitted(id)) meter(id, 'grid', 1 / gridIds.length)

      for (const area of site.areas) {
        for (const line of area.lines) {
          const lineScope = `${site.id}/${area.id}/${line.id}`
          const anyEmitted = line.equipment.some((eq) => eq.devices.some(emitted))
          if (!anyEmitted && !gridEmitted) continue
          const lineRng = streamRng(seed, `line:${lineScope}`)
          const pattern = patternOf(
            area.id,
            line.equipment.map((eq) => eq.type),
            lineRng,
          )
          const phase = Math.floor(lineRng() * dtMs)
          const sims: EquipmentSim[] = []
          const lineDevices: DeviceSim[] = []
          for (const spec of line.equipment) {
            const scope = `${lineScope}/${spec.id}`
            const roles = deviceRolesOf(spec)
            let process = roles.process
            if (spec.tuning && process === undefined)
              process = { device: roles.power, measure: spec.tuning.constraint.measure }
            const claimed = new Set([roles.power, roles.output, process?.device])
            const unclaimed = spec.devices.some((id) => !claimed.has(id))
            const processMeasure = process?.measure ?? (unclaimed ? 'temperature' : undefined)
            const eq = new EquipmentSim(
              spec,
              scope,
              streamRng(seed, `eq:${scope}`),
              roles.output !== undefined,
              processMeasure,
            )
            sims.push(eq)
            const inTruth = spec.devices.some(emitted)
            if (inTruth) {
              eq.minutes = new MinuteSeries(baseBucket)
              if (eq.physics === K_MACHINE || eq.physics === K_OVEN || spec.idle !== undefined) {
                eq.detector = new IdleDetector({
                  offBelowW: eq.offBelowW,
                  runAboveW: eq.runAboveW,
                  afterS: eq.afterS,
                  output: eq.hasOutput,
                })
              }
              if (spec.tuning) eq.feasibleFlat = []
              this.truthEquipment.set(scope, eq)
            }
            for (const id of spec.devices) {
              if (!emitted(id)) continue
              const records = recordsOf(spec, id, processMeasure, process?.device, roles.output)
              const device = new DeviceSim(
                id,
                site.id,
                rank.get(id)!,
                eq,
                eq,
                records,
                streamRng(seed, `dev:${id}`),
                faults,
                this,
                this.startMs,
                dtMs,
              )
              lineDevices.push(device)
              addDevice(device)
            }
          }
          const lineSim = new LineSim(lineScope, siteSim, pattern, phase, sims, lags, dtMs)
          lineSim.devices = lineDevices.sort((a, b) => a.rank - b.rank)
          units.push({ unit: lineSim, order: units.length })
        }
      }
    }
    units.sort((a, b) => a.unit.phaseMs - b.unit.phaseMs || a.order - b.order)
    this.units = units.map((u) => u.unit)
    this.truth = new TruthView(this)
  }

  /** Advances simulated time to tS (non-decreasing); returns the messages sent in (previous, tS]. */
  advanceTo(tS: number): OutgoingMessage[] {
    if (!Number.isFinite(tS)) throw new RangeError(`time must be finite, got ${tS}`)
    const T = Math.floor(tS * 1000 + 1e-6)
    if (T < this.horizonMs) throw new RangeError(`time must not go backwards: ${tS} < ${this.horizonMs / 1000}`)
    this.horizonMs = T
    const units = this.units
    const n = units.length
    if (n > 0) {
      const interval = this.intervalMs
      let tick = this.tick
      let index = this.unitIndex
      let tickMs = this.gridMs + (tick - this.gridTick) * interval
      for (;;) {
        const unit = units[index]!
        const sMs = tickMs + unit.phaseMs
        if (sMs > T) break
        unit.step(sMs, tick, tickMs)
        this.lastSampleMs = sMs
        if (++index === n) {
          index = 0
          tick++
          tickMs = this.gridMs + (tick - this.gridTick) * interval
        }
      }
      this.tick = tick
      this.unitIndex = index
    }
    const heap = this.heap
    const due = this.due
    while (heap.size > 0 && heap.peek()!.sendMs <= T) due.push(heap.pop()!)
    this.due = []
    due.sort(SimMessage.compare)
    return due
  }

  /**
   * The start (epoch s) of the latest tick at or before tS on the current grid of report intervals
   * (never before the simulation's start): where setReportInterval may take effect.
   */
  tickStartAtOrBefore(tS: number): number {
    const ms = Math.floor(tS * 1000 + 1e-6)
    const ticks = Math.max(0, Math.floor((ms - this.gridMs) / this.intervalMs))
    return (this.gridMs + ticks * this.intervalMs) / 1000
  }

  /**
   * Changes the report interval from the next tick on; only between ticks, that is once advanceTo
   * has simulated every sample of a tick and none of the next (advance to just before a
   * tickStartAtOrBefore boundary). Every line and meter keeps its place in the order of sampling
   * (phases scale with the interval), so each device's next sample comes after its previous one;
   * the step across the change integrates energy over the time actually elapsed, so counters and
   * the truth stay exact. Physics time constants hold for the new step from then on.
   */
  setReportInterval(intervalS: number): void {
    if (!(intervalS > 0 && intervalS <= 3600)) {
      throw new RangeError(`reportIntervalS must be within (0, 3600], got ${intervalS}`)
    }
    if (this.unitIndex !== 0) {
      throw new RangeError('the report interval changes only between ticks: advance to a tick boundary first')
    }
    const oldMs = this.intervalMs
    const newMs = Math.max(1, Math.round(intervalS * 1000))
    if (newMs === oldMs) return
    this.gridMs += (this.tick - this.gridTick) * oldMs
    this.gridTick = this.tick
    this.intervalMs = newMs
    this.maxIntervalMs = Math.max(this.maxIntervalMs, newMs)
    const lags = new Lags(newMs / 1000)
    for (const unit of this.units) {
      const phaseMs = Math.floor((unit.phaseMs * newMs) / oldMs)
      if (unit instanceof LineSim) unit.setInterval(newMs, lags, phaseMs)
      else {
        unit.dtMs = newMs
        unit.phaseMs = phaseMs
      }
    }
    for (const device of this.devices.values()) device.setInterval(newMs)
  }

  /**
   * A device's counters continue from values a platform already holds (the `energy` counter in
   * Wh, the `output` counter in units): its next sample reads them plus what was counted since.
   */
  continueCounters(deviceId: string, counters: { energy?: number; output?: number }): void {
    const device = this.devices.get(deviceId)
    if (device === undefined) throw new RangeError(`device ${deviceId} is not simulated here`)
    device.continueCounters(counters.energy, counters.output)
  }

  /** A setpoint command (CONTRACT.md §3) for a device emitted here, received at simulated time tS. */
  receiveCommand(deviceId: string, command: SetpointCommand, tS: number): void {
    const device = this.devices.get(deviceId)
    if (device === undefined) throw new RangeError(`device ${deviceId} is not simulated here`)
    if (!Number.isFinite(tS)) throw new RangeError(`time must be finite, got ${tS}`)
    device.receive(command, Math.round(tS * 1000))
  }

  /** Latest sample time simulated (s), or startS before the first. */
  get simulatedUntilS(): number {
    return Number.isNaN(this.lastSampleMs) ? this.startMs / 1000 : this.lastSampleMs / 1000
  }

  /**
   * Messages made and not yet due (sent after the time reached: network latency, retransmission).
   * Bounded by the fault model's delays, however long the run.
   */
  get pendingMessages(): number {
    return this.heap.size
  }

  /** Devices whose messages this simulation emits. */
  get deviceCount(): number {
    return this.devices.size
  }

  // MessageSink ---------------------------------------------------------------------------------

  emit(device: DeviceSim, kind: 'up' | 'ack', sendMs: number, payload: Buffer): void {
    const message = new SimMessage(device.id, device.site, kind, sendMs, payload, device.rank, this.seq++)
    if (sendMs <= this.horizonMs) this.due.push(message)
    else this.heap.push(message)
  }

  recordReset(deviceId: string, tMs: number, energy: boolean, output: boolean): void {
    this.resets.push({ device: deviceId, tS: tMs / 1000, energy, output })
  }

  recordCommand(deviceId: string, tMs: number, id: string, value: number, status: 'applied' | 'rejected'): void {
    this.commandLog.push({ device: deviceId, tS: tMs / 1000, id, value, status })
  }

  // For the truth view --------------------------------------------------------------------------

  /** @internal */
  truthParts() {
    return {
      seed: this.seed,
      startMs: this.startMs,
      intervalMs: this.maxIntervalMs,
      equipment: this.truthEquipment,
      meters: this.truthMeters,
      resets: this.resets,
      commands: this.commandLog,
      devices: this.devices,
      untilS: this.simulatedUntilS,
    }
  }
}

class TruthView implements GroundTruth {
  private readonly sim: PlantSimulation

  constructor(sim: PlantSimulation) {
    this.sim = sim
  }

  private equipment(scope: string): EquipmentSim {
    const eq = this.sim.truthParts().equipment.get(scope)
    if (eq === undefined) throw new RangeError(`equipment ${scope} is not simulated here`)
    return eq
  }

  energyByMinute(equipmentScope: string): { startMs: number; wh: Float64Array } {
    const series = this.equipment(equipmentScope).minutes!
    return { startMs: series.baseBucket * 60_000, wh: series.snapshot() }
  }

  energyTotalWh(equipmentScope: string): number {
    const eq = this.equipment(equipmentScope)
    return eq.started ? eq.energyWh - eq.energyStartWh : 0
  }

  meterEnergyByMinute(deviceId: string): { startMs: number; wh: Float64Array } {
    const meter = this.sim.truthParts().meters.get(deviceId)
    if (meter === undefined) throw new RangeError(`meter ${deviceId} is not simulated here`)
    const series = meter.kind === 'pv' ? meter.minutes! : meter.site.importMinutes!
    return { startMs: series.baseBucket * 60_000, wh: series.snapshot(meter.kind === 'pv' ? 1 : meter.share) }
  }

  equipmentScopes(): string[] {
    return [...this.sim.truthParts().equipment.keys()]
  }

  idleEpisodes(): IdleEpisode[] {
    const out: IdleEpisode[] = []
    for (const [scope, eq] of this.sim.truthParts().equipment) {
      if (eq.detector !== undefined) out.push(...eq.detector.episodes(scope))
    }
    out.sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : a.startS - b.startS))
    return out
  }

  idleRules(): IdleRuleInfo[] {
    const out: IdleRuleInfo[] = []
    for (const [scope, eq] of this.sim.truthParts().equipment) {
      if (eq.detector === undefined) continue
      out.push({
        scope,
        offBelowW: eq.offBelowW,
        runAboveW: eq.runAboveW,
        afterS: eq.afterS,
        output: eq.hasOutput,
        source: eq.thresholdsFromModel ? 'model' : 'simulator',
      })
    }
    return out
  }

  feasibleSetpoints(): FeasibleSetpoints[] {
    const out: FeasibleSetpoints[] = []
    for (const [scope, eq] of this.sim.truthParts().equipment) {
      const flat = eq.feasibleFlat
      if (flat === undefined) continue
      const points: { tS: number; value: number }[] = []
      for (let i = 0; i < flat.length; i += 2) points.push({ tS: flat[i]!, value: flat[i + 1]! })
      out.push({ scope, name: eq.spec.tuning!.setpoint, points })
    }
    return out
  }

  counterResets(): CounterReset[] {
    return this.sim.truthParts().resets.map((r) => ({ ...r }))
  }

  commands(): CommandRecord[] {
    return this.sim.truthParts().commands.map((c) => ({ ...c }))
  }

  maxClockErrorS(): number {
    let max = 0
    for (const device of this.sim.truthParts().devices.values()) if (device.maxAbsErrMs > max) max = device.maxAbsErrMs
    return max / 1000
  }

  toJSON(): TruthJson {
    const parts = this.sim.truthParts()
    const equipment: TruthJson['equipment'] = []
    for (const [scope, eq] of parts.equipment) {
      equipment.push({
        scope,
        totalWh: Math.round(this.energyTotalWh(scope) * 1e4) / 1e4,
        wh: minutesToJson(eq.minutes!.snapshot()),
      })
    }
    const meters: TruthJson['meters'] = []
    for (const [device, meter] of parts.meters) {
      meters.push({
        device,
        site: meter.site.id,
        kind: meter.kind,
        wh: minutesToJson(this.meterEnergyByMinute(device).wh),
      })
    }
    return {
      format: 'plantwatt-truth',
      version: 1,
      seed: parts.seed,
      startS: parts.startMs / 1000,
      reportIntervalS: parts.intervalMs / 1000,
      untilS: parts.untilS,
      minuteStartMs: Math.floor(parts.startMs / 60_000) * 60_000,
      equipment,
      meters,
      idleRules: this.idleRules(),
      idleEpisodes: this.idleEpisodes(),
      feasibleSetpoints: this.feasibleSetpoints().map((f) => ({
        scope: f.scope,
        name: f.name,
        points: f.points.map((p): [number, number] => [p.tS, p.value]),
      })),
      counterResets: this.counterResets(),
      commands: this.commands(),
      maxClockErrorS: this.maxClockErrorS(),
    }
  }
}
