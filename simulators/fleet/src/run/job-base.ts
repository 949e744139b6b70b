// What a simulate job and a replay job share inside a worker process: the sessions (a driven
// SessionEngine), the horizon set by the coordinator, the counters and the report.

import { SessionEngine } from '../sessions/engine.ts'
import { encodeLatency } from '../sessions/latency.ts'
import type { FleetDevice } from '../sessions/types.ts'
import { paceS, type Speed } from './clock.ts'
import type { RunWorkerReport, SessionsSpec } from './protocol.ts'

// Every queue between the plant simulation and the brokers is bounded; what happens at each bound:
//
// - The sessions' backlog (messages handed to the sessions and not yet acknowledged): at most
//   backlogLimit(). When it is reached, simulated time waits, at any speed: the simulation makes
//   nothing more until the brokers acknowledge. At `--speed max` that is the pace itself; at
//   `--speed X` simulated time falls behind the wall clock, and the run says so (lagS in every
//   report, achieved speed and lag in the summary) instead of queueing without end. Time lost is
//   not caught up at more than X: the brokers get at most the load asked for, never a burst.
// - At `--speed X` only connected sessions count (onlineBacklog): a device that is offline keeps
//   its messages in its own outbox, at most OFFLINE_OUTBOX, then drops the oldest (counted as
//   outboxDropped), as an NB-IoT device with a full buffer does, while the rest of the plant goes on
//   in real time. At `--speed max` there is no real time to keep: time waits for it too.
// - A session's socket: nothing is written past a write that returned false until 'drain', and
//   at most the in-flight window (8 publishes) is ever written ahead of PUBACKs (engine.ts).
// - PlantSimulation's queue of messages not yet due: bounded by the fault model (latency and
//   retransmission delays, seconds), as it holds only messages due after the time reached.
// - The recording: write() awaits gzip beyond 4 MiB (recording/files.ts).
// - Reports to the coordinator: one at a time, the next only once the previous was received
//   (worker.ts); the latency histograms between two reports have a fixed size.

/** At `--speed max`, messages handed to the sessions and not yet acknowledged, at most. */
export function backlogLimit(sessions: number): number {
  return Math.max(1000, 2 * sessions)
}

/**
 * At `--speed X`, messages in connected sessions not yet acknowledged, at most: four per session
 * on average (four seconds of a fleet at one pack a second, a few MB for 10,000 sessions), half of
 * the in-flight window each session may use.
 */
export function onlineBacklogLimit(sessions: number): number {
  return Math.max(1000, 4 * sessions)
}

/** At `--speed X`, messages a session that cannot send keeps before dropping the oldest. */
export const OFFLINE_OUTBOX = 100

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export abstract class FleetJob {
  readonly engine: SessionEngine | null
  protected horizonS = Number.NEGATIVE_INFINITY
  protected reachedS = Number.NEGATIVE_INFINITY
  protected produced = false
  protected finishing = false
  protected uplinks = 0
  protected acks = 0
  protected recorded = 0
  protected commandsReceived = 0
  protected downlinksRefused = 0
  private readonly maxBacklog: number
  private blockedAtS = Number.NaN
  // Pacing at `--speed X` (set by beginPacing): simulated time runs from `paceStartS` at X per
  // wall second from `paceWallStartMs`, minus `heldS`, the simulated seconds lost waiting for the
  // sessions (never caught up). `finalLagS` freezes the lag once everything is produced.
  private paceStartS = Number.NaN
  private paceWallStartMs = Number.NaN
  protected heldS = 0
  private heldWallMs = 0
  private heldSinceMs = Number.NaN
  private finalLagS = Number.NaN
  /** Called when the job waits at the horizon, so the coordinator can move it at once. */
  onBlocked: () => void = () => {}

  constructor(
    readonly speed: Speed,
    spec: SessionsSpec | null,
    devices: readonly FleetDevice[],
    onDownlink?: (device: FleetDevice, payload: Buffer) => void,
  ) {
    this.maxBacklog = speed === 'max' ? backlogLimit(devices.length) : onlineBacklogLimit(devices.length)
    this.engine =
      spec === null
        ? null
        : new SessionEngine({
            devices,
            brokers: spec.brokers,
            deviceSecret: spec.deviceSecret,
            localAddresses: spec.localAddresses,
            connectRatePerS: spec.connectRatePerS,
            maxConnectsInFlight: spec.maxConnectsInFlight,
            keepaliveS: spec.keepaliveS,
            // NB-IoT devices keep their session: commands queued while they sleep reach them.
            clean: false,
            driven: true,
            // At max speed the backlog bound counts every outbox; see the top of this file.
            maxOutboxPerSession: speed === 'max' ? undefined : OFFLINE_OUTBOX,
            onDownlink,
          })
  }

  connect(): void {
    this.engine?.start()
  }

  setHorizon(horizonS: number): void {
    this.horizonS = Math.max(this.horizonS, horizonS)
  }

  /** Ends early: produce nothing more, drain what was produced. */
  finish(): void {
    this.finishing = true
  }

  /** Tells the coordinator (once per horizon) that this worker waits for the others. */
  protected blockedAtHorizon(): void {
    if (this.blockedAtS === this.horizonS) return
    this.blockedAtS = this.horizonS
    this.onBlocked()
  }

  /** Whether the sessions can take more now (see the top of this file). */
  protected hasRoom(): boolean {
    if (this.engine === null) return true
    const backlog = this.speed === 'max' ? this.engine.backlog() : this.engine.onlineBacklog()
    return backlog < this.maxBacklog
  }

  /** Starts the wall-clock pacing of `--speed X` at simulated `startS`, wall time `wallStartMs`. */
  protected beginPacing(startS: number, wallStartMs: number): void {
    this.paceStartS = startS
    this.paceWallStartMs = wallStartMs
  }

  /**
   * Simulated time due at wall time `nowMs`: at `--speed X` the wall-clock schedule less the time
   * lost waiting for the sessions; at `max` the horizon.
   */
  protected scheduleS(nowMs: number): number {
    const due = paceS(this.paceStartS, this.speed, this.paceWallStartMs, nowMs, this.horizonS)
    return this.speed === 'max' ? due : Math.min(this.horizonS, due - this.heldS)
  }

  /**
   * At `--speed X`, the sessions cannot take more: simulated time stops at `atS` (what was due
   * until now and not produced is lost to the schedule, so that it resumes at X, not faster).
   */
  protected holdBack(atS: number, nowMs: number): void {
    if (this.speed === 'max') return
    const due = paceS(this.paceStartS, this.speed, this.paceWallStartMs, nowMs, Number.POSITIVE_INFINITY)
    this.heldS = Math.max(this.heldS, due - atS)
    if (Number.isNaN(this.heldSinceMs)) this.heldSinceMs = nowMs
  }

  /** The sessions took messages again after holdBack(). */
  protected released(nowMs: number): void {
    if (Number.isNaN(this.heldSinceMs)) return
    this.heldWallMs += nowMs - this.heldSinceMs
    this.heldSinceMs = Number.NaN
  }

  /** Marks everything produced: the lag is what it is now. */
  protected producedAll(): void {
    this.finalLagS = this.lagS(Date.now())
    this.released(Date.now())
    this.produced = true
  }

  /** At `--speed X`, simulated seconds the run is behind its wall-clock schedule; 0 at max. */
  private lagS(nowMs: number): number {
    if (!Number.isNaN(this.finalLagS)) return this.finalLagS
    if (this.speed === 'max' || Number.isNaN(this.paceStartS) || !Number.isFinite(this.reachedS)) return 0
    const due = paceS(this.paceStartS, this.speed, this.paceWallStartMs, nowMs, Number.POSITIVE_INFINITY)
    return Math.max(0, due - this.reachedS)
  }

  /** Waits (bounded by `drainMs`) for the sessions to have sent everything, then closes them. */
  protected async closeSessions(drainMs: number): Promise<void> {
    await this.engine?.stop({ drainMs, closeMs: 2000 })
  }

  /** Messages the job made and has not yet handed to the sessions (a simulation's not yet due). */
  protected pendingInSimulation(): number {
    return 0
  }

  report(): RunWorkerReport {
    const engine = this.engine
    let latency = ''
    let connectLatency = ''
    if (engine) {
      // Interval histograms: each value reaches the coordinator once, where they add up.
      if (engine.latency.totalCount > 0) latency = encodeLatency(engine.latency)
      if (engine.connectLatency.totalCount > 0) connectLatency = encodeLatency(engine.connectLatency)
      engine.latency.reset()
      engine.connectLatency.reset()
    }
    const cpu = process.cpuUsage()
    const nowMs = Date.now()
    return {
      reachedS: this.reachedS,
      settledS: engine ? Math.min(this.reachedS, engine.settledBeforeS()) : this.reachedS,
      produced: this.produced,
      lagS: this.lagS(nowMs),
      heldWallS: (this.heldWallMs + (Number.isNaN(this.heldSinceMs) ? 0 : nowMs - this.heldSinceMs)) / 1000,
      backlogLimit: this.maxBacklog,
      pendingInSimulation: this.pendingInSimulation(),
      uplinks: this.uplinks,
      acks: this.acks,
      recorded: this.recorded,
      commandsReceived: this.commandsReceived,
      downlinksRefused: this.downlinksRefused,
      sessions: engine ? engine.stats() : null,
      latency,
      connectLatency,
      process: { pid: process.pid, rssBytes: process.memoryUsage.rss(), cpuUserUs: cpu.user, cpuSystemUs: cpu.system },
    }
  }
}
