// NB-IoT device behaviour: what one device measures, how it encodes it, and what the radio does
// to it. Everything here draws from the device's own random stream.
//
// Sampling: every report interval, at its line's sample instant, the device reads its records
// (CONTRACT.md §2, at most 4 by the layout of deviceRolesOf): the power meter `power` and `energy`
// (+ `output` and the process variable when the dedicated devices were dropped), an output-counter
// device `output`, a process sensor its variable — for a tuned equipment the setpoint value (e.g.
// `fan_hz`) and the constraint measure (e.g. `solvent_ppm`). Device ids no role claims report a
// generic `temperature`.
//
// Resolution (documented for scoring): power 0.1 W; energy counters 0.01 Wh of an exact integral
// of the true power (so counter differences equal the true energy to ±0.01 Wh, far inside the 0.1 %
// the processor is scored at); output counters whole units; process variables 0.1 (pressure 100 Pa,
// setpoints as commanded). Devices start with counters from an earlier life (10 kWh–5 MWh, 1,000 to
// 1,000,000 units).
//
// Payload: SenML JSON, byte-identical to encodeSenmlJson of the same records (built as a string
// here, since it runs 40,000 times a simulated second): the first record carries
// bn "urn:dev:imei:{id}:" and bt; a batch repeats bt on the first record of every sample, so each
// reading's time is exactly its bt (no float sums of bt + t).
//
// Faults (each off unless configured):
// - psm: the device buffers its samples and uploads them every batchIntervalS (±10 %, the first wake
//   at a random point of the first interval), at most 600 samples per message; commands are applied
//   only at a wake.
// - latency: each message leaves mean ± jitter (uniform) ms after its last sample, never before a
//   message the device sent earlier (a modem sends in order).
// - reorder: with this probability a message is held back and sent right after the device's next
//   one.
// - loss: with this probability the first transmission fails; half of the time the uplink was lost
//   (the message arrives once, retransmitAfterS late), half of the time only its acknowledgement
//   was (the same bytes arrive twice: a duplicate).
// - clockDriftPpm: the device clock runs off by a rate drawn uniformly in ±ppm; timestamps carry the
//   device clock (whole ms), the truth stays in true time. The clock resyncs on every (re)connect —
//   each PSM wake, each reboot — and every 6 h from the network for connected devices; a resync
//   slews at 500 ppm (like NTP) instead of stepping, so a device's timestamps never go backwards and
//   its counters never appear to run backwards in time. The error stays within ppm × 6 h (≈ 1.1 s at
//   50 ppm); the truth reports the largest error seen. Score the processor with a time tolerance of
//   that much on episode boundaries and on 1-minute buckets next to power steps (totals over a run
//   are unaffected).
// - counterResets: reboots at exponential intervals; a reboot resets the device's energy and output
//   counters to 0 right after a sample, so the next reading holds exactly the energy and output of
//   one interval and CONTRACT.md §7's "a reset counts the new value" recovers every Wh. A reboot
//   waits until every counter of the device is well above what one interval can add (so the
//   decrease is unmistakable). The truth lists every reset.

import type { SetpointCommand } from '@plantwatt/contract'
import type { EquipmentSim } from './equipment.ts'
import { exponential, type Rng, uniform } from './rng.ts'
import type { MeterSim } from './site.ts'

export const R_POWER = 0
export const R_ENERGY = 1
export const R_OUTPUT = 2
export const R_PV = 3
export const R_SP = 4

export interface ResolvedFaults {
  psmShare: number
  batchMs: number
  latencyMeanMs: number
  latencyJitterMs: number
  latency: boolean
  lossProbability: number
  retransmitMs: number
  reorderProbability: number
  driftPpm: number
  rebootMeanS: number
  commandRejectProbability: number
  commandUnansweredProbability: number
}

/** Where a device's messages go: the simulation's queue. */
export interface MessageSink {
  emit(device: DeviceSim, kind: 'up' | 'ack', sendMs: number, payload: Buffer): void
  recordReset(deviceId: string, tMs: number, energy: boolean, output: boolean): void
  recordCommand(deviceId: string, tMs: number, id: string, value: number, status: 'applied' | 'rejected'): void
}

export interface RecordSpec {
  kind: number
  name: string
  unit: string | undefined
}

const MAX_SAMPLES_PER_MESSAGE = 600
// Payloads are written into 64 KiB slabs (Node's own pool uses 8 KiB): far fewer ArrayBuffers for
// the garbage collector at 40,000 packs a second. A payload keeps its slab alive, like any pooled
// Buffer; large batches get their own allocation.
const SLAB_BYTES = 65_536
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let slabUsed = 0

function toBuffer(text: string, encoding: 'latin1' | 'utf8'): Buffer {
  const max = encoding === 'latin1' ? text.length : text.length * 3
  if (max > SLAB_BYTES >> 3) return Buffer.from(text, encoding)
  if (slabUsed + max > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
    slabUsed = 0
  }
  const start = slabUsed
  slabUsed += slab.write(text, start, encoding)
  return slab.subarray(start, slabUsed)
}
const SLEW = 500e-6
const RESYNC_EVERY_MS = 6 * 3_600_000

interface PendingCommand {
  command: SetpointCommand
  atMs: number
}

export class DeviceSim {
  readonly id: string
  readonly site: string
  readonly rank: number
  readonly src: EquipmentSim | MeterSim
  readonly eq: EquipmentSim | undefined
  private readonly sink: MessageSink
  private readonly rng: Rng
  private readonly faults: ResolvedFaults
  private dtMs: number
  private readonly kinds: Uint8Array
  private readonly prefixes: string[]
  private readonly n: number
  private readonly head: string
  private readonly encoding: 'latin1' | 'utf8'
  private readonly vals: Float64Array
  readonly reportsSetpoint: boolean
  private readonly hasEnergy: boolean
  private readonly hasOutput: boolean

  readonly psm: boolean
  private nextWakeMs = Number.POSITIVE_INFINITY
  private buf: Float64Array
  private bufN = 0
  private lastSendMs = Number.NEGATIVE_INFINITY
  private held: Buffer | null = null

  private driftPpm = 0
  private errMs = 0
  private slewing = false
  private nextSyncMs = Number.POSITIVE_INFINITY
  maxAbsErrMs = 0

  private nextRebootMs = Number.POSITIVE_INFINITY
  private energyBase: number
  private outputBase: number
  private readonly pending: PendingCommand[] = []

  constructor(
    id: string,
    site: string,
    rank: number,
    src: EquipmentSim | MeterSim,
    eq: EquipmentSim | undefined,
    records: RecordSpec[],
    rng: Rng,
    faults: ResolvedFaults,
    sink: MessageSink,
    startMs: number,
    dtMs: number,
  ) {
    this.id = id
    this.site = site
    this.rank = rank
    this.src = src
    this.eq = eq
    this.rng = rng
    this.faults = faults
    this.sink = sink
    this.dtMs = dtMs
    this.n = records.length
    this.kinds = Uint8Array.from(records.map((r) => r.kind))
    // Each record's fields after its opening brace (and bt, on a sample's first record), in the
    // key order encodeSenmlJson writes them: n, u, then v or s.
    this.prefixes = records.map((r) => {
      const field = r.kind === R_ENERGY || r.kind === R_OUTPUT ? 's' : 'v'
      const unit = r.unit === undefined ? '' : `,"u":${JSON.stringify(r.unit)}`
      return `"n":${JSON.stringify(r.name)}${unit},"${field}":`
    })
    this.head = `{"bn":${JSON.stringify(`urn:dev:imei:${id}:`)},"bt":`
    // One-byte strings encode faster as latin1, which equals UTF-8 for ASCII.
    this.encoding = /^[\x20-\x7e]*$/.test(this.head + this.prefixes.join('')) ? 'latin1' : 'utf8'
    this.vals = new Float64Array(this.n)
    this.reportsSetpoint = this.kinds.includes(R_SP)
    this.hasEnergy = this.kinds.includes(R_ENERGY)
    this.hasOutput = this.kinds.includes(R_OUTPUT)

    // Draws in a fixed order, whatever is switched on, so that switching one fault on does not
    // change the others' draws.
    this.energyBase = -Math.round(uniform(rng, 1e4, 5e6) * 100) / 100
    this.outputBase = -Math.floor(uniform(rng, 1e3, 1e6))
    const psmDraw = rng()
    const wakeDraw = rng()
    const driftDraw = rng()
    const rebootDraw = rng()
    this.psm = psmDraw < faults.psmShare
    this.buf = new Float64Array(this.psm ? (1 + this.n) * Math.ceil(faults.batchMs / dtMs + 2) : 0)
    if (this.psm) this.nextWakeMs = startMs + Math.floor(wakeDraw * faults.batchMs)
    if (faults.driftPpm > 0) {
      this.driftPpm = (2 * driftDraw - 1) * faults.driftPpm
      this.nextSyncMs = startMs + RESYNC_EVERY_MS
    }
    if (faults.rebootMeanS > 0) this.nextRebootMs = startMs - Math.log(1 - rebootDraw) * faults.rebootMeanS * 1000
  }

  /** A new report interval from the device's next sample on (PlantSimulation.setReportInterval). */
  setInterval(dtMs: number): void {
    this.dtMs = dtMs
  }

  /**
   * Counters that continue from values a platform already holds (a restarted demo): the next
   * sample reads exactly these plus what was counted since.
   */
  continueCounters(energy: number | undefined, output: number | undefined): void {
    if (energy !== undefined) this.energyBase = this.src.energyWh - energy
    if (output !== undefined) this.outputBase = this.src.output - output
  }

  /** A command received at tMs, applied at the device's next sample when awake. */
  receive(command: SetpointCommand, tMs: number): void {
    this.pending.push({ command, atMs: tMs })
  }

  sample(sMs: number): void {
    const faults = this.faults
    let stampMs = sMs
    if (faults.driftPpm > 0) {
      let err = this.errMs + this.driftPpm * 1e-6 * this.dtMs
      if (this.slewing) {
        const step = SLEW * this.dtMs
        if (err > step) err -= step
        else if (err < -step) err += step
        else {
          err = 0
          this.slewing = false
        }
      }
      this.errMs = err
      const abs = err < 0 ? -err : err
      if (abs > this.maxAbsErrMs) this.maxAbsErrMs = abs
      stampMs = sMs + Math.round(err)
      if (sMs >= this.nextSyncMs) {
        this.slewing = true
        this.nextSyncMs += RESYNC_EVERY_MS
      }
    }
    const vals = this.vals
    const src = this.src
    for (let i = 0; i < this.n; i++) {
      switch (this.kinds[i]) {
        case R_POWER:
          vals[i] = src.powerW
          break
        case R_ENERGY:
          vals[i] = Math.round((src.energyWh - this.energyBase) * 100) / 100
          break
        case R_OUTPUT:
          vals[i] = src.output - this.outputBase
          break
        case R_PV:
          vals[i] = src.pvReported
          break
        default:
          vals[i] = src.spReported
      }
    }

    if (this.psm) {
      const stride = 1 + this.n
      let at = this.bufN * stride
      if (at + stride > this.buf.length) {
        const next = new Float64Array(this.buf.length * 2 + stride)
        next.set(this.buf)
        this.buf = next
      }
      const buf = this.buf
      buf[at++] = stampMs
      for (let i = 0; i < this.n; i++) buf[at++] = vals[i]!
      this.bufN++
      if (sMs >= this.nextWakeMs) {
        this.flush(sMs)
        if (this.pending.length > 0) this.applyCommands(sMs)
        if (faults.driftPpm > 0) this.slewing = true
        this.nextWakeMs = sMs + Math.round(faults.batchMs * uniform(this.rng, 0.9, 1.1))
      }
    } else {
      this.sendUp(toBuffer(`[${this.group(stampMs, true, vals, 0)}]`, this.encoding), sMs)
      if (this.pending.length > 0) this.applyCommands(sMs)
    }

    if (sMs >= this.nextRebootMs) this.reboot(sMs)
  }

  /** One sample's records as SenML JSON objects (without the surrounding brackets). */
  private group(stampMs: number, first: boolean, values: Float64Array, offset: number): string {
    const prefixes = this.prefixes
    let s = `${first ? this.head : '{"bt":'}${stampMs / 1000},${prefixes[0]}${values[offset]}`
    for (let i = 1; i < this.n; i++) s += `},{${prefixes[i]}${values[offset + i]}`
    return `${s}}`
  }

  private flush(sMs: number): void {
    const stride = 1 + this.n
    const buf = this.buf
    for (let first = 0; first < this.bufN; first += MAX_SAMPLES_PER_MESSAGE) {
      const end = Math.min(this.bufN, first + MAX_SAMPLES_PER_MESSAGE)
      let s = '['
      for (let j = first; j < end; j++) {
        if (j > first) s += ','
        s += this.group(buf[j * stride]!, j === first, buf, j * stride + 1)
      }
      this.sendUp(toBuffer(`${s}]`, this.encoding), sMs)
    }
    this.bufN = 0
  }

  private latency(): number {
    const f = this.faults
    if (!f.latency) return 0
    const d = Math.round(f.latencyMeanMs + f.latencyJitterMs * (2 * this.rng() - 1))
    return Math.max(d, 0)
  }

  private sendUp(payload: Buffer, sMs: number): void {
    let sendMs = sMs + this.latency()
    if (sendMs < this.lastSendMs) sendMs = this.lastSendMs
    this.lastSendMs = sendMs
    const f = this.faults
    if (f.reorderProbability > 0) {
      if (this.held === null && this.rng() < f.reorderProbability) {
        this.held = payload
        return
      }
      this.transmit(payload, sendMs)
      if (this.held !== null) {
        const held = this.held
        this.held = null
        this.transmit(held, sendMs)
      }
      return
    }
    this.transmit(payload, sendMs)
  }

  private transmit(payload: Buffer, sendMs: number): void {
    const f = this.faults
    if (f.lossProbability > 0 && this.rng() < f.lossProbability) {
      if (this.rng() < 0.5) this.sink.emit(this, 'up', sendMs, payload)
      this.sink.emit(this, 'up', sendMs + f.retransmitMs, payload)
      return
    }
    this.sink.emit(this, 'up', sendMs, payload)
  }

  private applyCommands(sMs: number): void {
    const pending = this.pending
    let kept = 0
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i]!
      if (p.atMs > sMs) {
        pending[kept++] = p
        continue
      }
      const { command } = p
      const f = this.faults
      // The rng is drawn only with the fault on, so runs without it stay as they were.
      if (f.commandUnansweredProbability > 0 && this.rng() < f.commandUnansweredProbability) continue
      let reason = this.check(command)
      if (reason === undefined && f.commandRejectProbability > 0 && this.rng() < f.commandRejectProbability) {
        reason = 'refused by the device (simulated fault)'
      }
      if (reason === undefined) this.eq!.setpoint = command.value
      // `t`: the device's own time of applying, with its clock error (CONTRACT.md §3 v1.1).
      const t = (sMs + Math.round(this.errMs)) / 1000
      const ack =
        reason === undefined
          ? { id: command.id, status: 'applied' as const, t }
          : { id: command.id, status: 'rejected' as const, reason, t }
      this.sink.recordCommand(this.id, sMs, command.id, command.value, ack.status)
      let sendMs = sMs + this.latency()
      if (sendMs < this.lastSendMs) sendMs = this.lastSendMs
      this.lastSendMs = sendMs
      this.sink.emit(this, 'ack', sendMs, Buffer.from(JSON.stringify(ack)))
    }
    pending.length = kept
  }

  private check(command: SetpointCommand): string | undefined {
    const tuning = this.eq?.spec.tuning
    if (command.type !== 'setpoint') return `unknown command type ${JSON.stringify(command.type)}`
    if (!this.reportsSetpoint || tuning === undefined || command.name !== tuning.setpoint) {
      return `device ${this.id} has no setpoint ${JSON.stringify(command.name)}`
    }
    if (typeof command.value !== 'number' || !Number.isFinite(command.value)) return 'value is not a finite number'
    if (command.value < tuning.min || command.value > tuning.max) {
      const unit = tuning.unit === undefined ? '' : ` ${tuning.unit}`
      return `${command.value} is outside the range ${tuning.min}–${tuning.max}${unit}`
    }
    return undefined
  }

  private reboot(sMs: number): void {
    const src = this.src
    const dtS = this.dtMs / 1000
    if (this.hasEnergy) {
      const maxW = this.eq !== undefined ? 1.5 * this.eq.ratedW : 3 * Math.abs(src.powerW) + 1000
      if (src.energyWh - this.energyBase < (3 * maxW * dtS) / 3600 + 0.1) return
    }
    if (this.hasOutput && this.eq !== undefined) {
      const maxUnits = Math.max(this.eq.unitRate * 1.2, 0.025) * dtS
      if (src.output - this.outputBase < 3 * maxUnits + 2) return
    }
    this.energyBase = src.energyWh
    this.outputBase = src.output
    this.sink.recordReset(this.id, sMs, this.hasEnergy, this.hasOutput)
    if (this.faults.driftPpm > 0) this.slewing = true
    this.nextRebootMs = sMs + exponential(this.rng, this.faults.rebootMeanS) * 1000
  }
}
