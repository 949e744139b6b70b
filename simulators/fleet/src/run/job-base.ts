// What a simulate job and a replay job share inside a worker process: the sessions (a driven
// SessionEngine), the horizon set by the coordinator, the counters and the report.

import { SessionEngine } from '../sessions/engine.ts'
import { encodeLatency } from '../sessions/latency.ts'
import type { FleetDevice } from '../sessions/types.ts'
import type { Speed } from './clock.ts'
import type { RunWorkerReport, SessionsSpec } from './protocol.ts'

/** At `--speed max`, messages handed to the sessions and not yet acknowledged, at most. */
export function backlogLimit(sessions: number): number {
  return Math.max(1000, 2 * sessions)
}

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
  /** Called when the job waits at the horizon, so the coordinator can move it at once. */
  onBlocked: () => void = () => {}

  constructor(
    readonly speed: Speed,
    spec: SessionsSpec | null,
    devices: readonly FleetDevice[],
    onDownlink?: (device: FleetDevice, payload: Buffer) => void,
  ) {
    this.maxBacklog = backlogLimit(devices.length)
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

  /** At `max` speed, whether the sessions can take more now. */
  protected hasRoom(): boolean {
    return this.engine === null || this.engine.backlog() < this.maxBacklog
  }

  /** Waits (bounded by `drainMs`) for the sessions to have sent everything, then closes them. */
  protected async closeSessions(drainMs: number): Promise<void> {
    await this.engine?.stop({ drainMs, closeMs: 2000 })
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
    return {
      reachedS: this.reachedS,
      produced: this.produced,
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
