// What a run tells the engineer: a live progress line on a terminal, a JSON summary at the end.

import type { FaultOptions } from '../model/index.ts'
import type { Speed } from './clock.ts'
import type { FleetWorkersResult, RunProgress } from './coordinator.ts'

export interface RunSummary {
  command: 'simulate' | 'replay'
  devices: number
  workers: number
  speed: Speed
  seed: number | null
  reportIntervalS: number | null
  faults: FaultOptions | null
  simulated: { start: string; end: string | null; seconds: number | null }
  /** Wall-clock seconds from the start of simulated time to the end of the run. */
  wallSeconds: number
  /** Of wallSeconds, those after everything was produced, waiting for the last PUBACKs. */
  drainSeconds: number
  /** Simulated seconds per wall-clock second achieved while producing (the drain left out). */
  achievedSpeed: number | null
  /**
   * At `--speed X`: how far simulated time ended behind the wall-clock schedule (s), and the wall
   * seconds it stood still because the sessions held as much as they may (the brokers did not
   * acknowledge fast enough). Both 0 when the run kept its speed; null at max.
   */
  behind: { lagS: number; heldSeconds: number } | null
  connect: {
    connected: number
    seconds: number
    perS: number
    latencyMs: { p50: number; p99: number; max: number }
  } | null
  messages: {
    uplinks: number
    acks: number
    /** Messages handed to the sessions (or the recording) per wall-clock second. */
    perS: number
    published: number
    acknowledged: number
    latencyMs: { p50: number; p99: number; max: number } | null
    /** Still queued or unacknowledged when the run ended. */
    unsentAtEnd: number
    droppedFromFullOutboxes: number
    resentAfterReconnect: number
  }
  commands: { received: number; refused: number }
  errors: {
    refused: Record<string, number>
    connectErrors: number
    connectTimeouts: number
    disconnects: number
    protocolErrors: number
    socket: Record<string, number>
  } | null
  record: { file: string; messages: number | null } | null
  truth: string | null
  processes: { cpuSeconds: number; cpuPercentOfOneCore: number; maxRssMB: number }
}

const iso = (s: number) => new Date(s * 1000).toISOString()
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits

export function summarize(
  command: RunSummary['command'],
  result: FleetWorkersResult,
  info: {
    speed: Speed
    seed: number | null
    reportIntervalS: number | null
    faults: FaultOptions | null
    record: string | null
    recorded: number | null
    truth: string | null
  },
): RunSummary {
  const { progress } = result
  const sessions = progress.sessions
  const wallSeconds = (result.wallEndMs - result.wallStartMs) / 1000
  const producingSeconds = (result.producedMs - result.wallStartMs) / 1000
  const reached = progress.reachedS
  const simulatedSeconds = reached === null ? null : Math.max(0, reached - result.startS)
  const connected = sessions ? sessions.connects - sessions.disconnects : 0
  const connectSeconds = (result.connectEndedMs - result.connectStartedMs) / 1000
  const lat = progress.latency
  return {
    command,
    devices: progress.devices,
    workers: progress.workers,
    speed: info.speed,
    seed: info.seed,
    reportIntervalS: info.reportIntervalS,
    faults: info.faults,
    simulated: {
      start: iso(result.startS),
      end: reached === null ? null : iso(reached),
      seconds: simulatedSeconds === null ? null : round(simulatedSeconds, 3),
    },
    wallSeconds: round(wallSeconds, 3),
    drainSeconds: round(Math.max(0, wallSeconds - producingSeconds), 3),
    achievedSpeed:
      simulatedSeconds === null || producingSeconds <= 0 ? null : round(simulatedSeconds / producingSeconds, 2),
    behind: info.speed === 'max' ? null : { lagS: round(progress.lagS), heldSeconds: round(progress.heldS) },
    connect: sessions
      ? {
          connected: Math.min(progress.devices, connected),
          seconds: round(connectSeconds, 3),
          perS: connectSeconds > 0 ? Math.round(Math.min(progress.devices, sessions.connects) / connectSeconds) : 0,
          latencyMs: {
            p50: progress.connectLatency.p50Ms,
            p99: progress.connectLatency.p99Ms,
            max: progress.connectLatency.maxMs,
          },
        }
      : null,
    messages: {
      uplinks: progress.uplinks,
      acks: progress.acks,
      perS: wallSeconds > 0 ? Math.round((progress.uplinks + progress.acks) / wallSeconds) : 0,
      published: sessions?.published ?? 0,
      acknowledged: sessions?.acked ?? 0,
      latencyMs: sessions ? { p50: lat.p50Ms, p99: lat.p99Ms, max: lat.maxMs } : null,
      unsentAtEnd: sessions ? sessions.queued + sessions.inflight : 0,
      droppedFromFullOutboxes: sessions?.outboxDropped ?? 0,
      resentAfterReconnect: sessions?.resent ?? 0,
    },
    commands: { received: progress.commandsReceived, refused: progress.downlinksRefused },
    errors: sessions
      ? {
          refused: sessions.refused,
          connectErrors: sessions.connectErrors,
          connectTimeouts: sessions.connectTimeouts,
          disconnects: sessions.disconnects,
          protocolErrors: sessions.protocolErrors,
          socket: sessions.errors,
        }
      : null,
    record: info.record ? { file: info.record, messages: info.recorded } : null,
    truth: info.truth,
    processes: {
      cpuSeconds: round(result.cpuSeconds, 2),
      cpuPercentOfOneCore:
        result.wallEndMs > result.connectStartedMs
          ? round((100 * result.cpuSeconds * 1000) / (result.wallEndMs - result.connectStartedMs))
          : 0,
      maxRssMB: round(result.maxRssBytes / 2 ** 20),
    },
  }
}

const count = (n: number) => Math.round(n).toLocaleString('en-US')

/** One line: connected, messages/s, errors, simulated time, for a terminal's status line. */
export function progressLine(progress: RunProgress, speed: Speed): string {
  const parts: string[] = [progress.phase]
  const sessions = progress.sessions
  if (sessions) {
    parts.push(`${count(sessions.connected)}/${count(progress.devices)} connected`)
    parts.push(`${count(progress.ackedPerS)} acked/s`)
    const errors =
      Object.values(sessions.refused).reduce((a, b) => a + b, 0) +
      sessions.connectErrors +
      sessions.connectTimeouts +
      sessions.disconnects +
      sessions.protocolErrors +
      sessions.outboxDropped
    parts.push(`${count(errors)} errors`)
    parts.push(`${count(sessions.queued + sessions.inflight)} waiting`)
  } else {
    parts.push(`${count(progress.devices)} devices`, `${count(progress.messagesPerS)} msg/s`)
  }
  if (progress.reachedS !== null && progress.startS !== null) {
    const simulated = new Date(progress.reachedS * 1000).toISOString().replace('T', ' ').slice(0, 19)
    let pace = speed === 'max' ? 'max' : `×${speed}`
    if (progress.phase === 'running' && progress.simulatedPerS !== null) {
      pace += `, achieved ×${round(progress.simulatedPerS, 2)}`
    }
    // Behind by more than half a wall second's worth: the sessions hold the simulation back.
    if (speed !== 'max' && progress.lagS > Math.max(1, speed / 2)) pace += `, ${round(progress.lagS)} s behind`
    parts.push(`sim ${simulated} UTC (${pace})`)
  }
  return parts.join(' · ')
}
