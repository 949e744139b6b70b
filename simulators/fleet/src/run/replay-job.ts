// A replay job in one worker process: reads the whole recording, and sends, byte for byte and
// at the recorded pace (or as fast as the broker takes them), the messages of its share of the
// devices. Every worker reads every line, so each knows how far the recording has got.

import { decodeRecordLine, openRecordingLines, recordingSites, recordLineTime } from '../recording/index.ts'
import type { FleetDevice } from '../sessions/types.ts'
import { FleetJob, sleep } from './job-base.ts'
import type { ReplayJob } from './protocol.ts'

const DRAIN_MS = 30_000

/** The worker (of `parts`) that sends for a device: a stable hash of its id. */
export function partOf(deviceId: string, parts: number): number {
  let hash = 2166136261
  for (let i = 0; i < deviceId.length; i++) hash = Math.imul(hash ^ deviceId.charCodeAt(i), 16777619)
  return (hash >>> 0) % parts
}

/** The `d` of a message line without parsing it (lines are written by encodeRecordLine). */
function lineDevice(text: string): string | undefined {
  const start = text.indexOf('"d":"')
  if (start < 0) return undefined
  const end = text.indexOf('"', start + 5)
  return end < 0 ? undefined : text.slice(start + 5, end)
}

export class ReplayRun extends FleetJob {
  private readonly indexOf = new Map<string, number>()

  private constructor(
    private readonly job: ReplayJob,
    devices: FleetDevice[],
    readonly startS: number,
  ) {
    super(job.speed, job.sessions, devices)
    for (const [index, device] of devices.entries()) this.indexOf.set(device.id, index)
  }

  static async open(job: ReplayJob): Promise<ReplayRun> {
    const { header, lines } = await openRecordingLines(job.file)
    await lines.return(undefined)
    const sites = await recordingSites(job.file)
    const devices: FleetDevice[] = []
    for (const [site, ids] of Object.entries(sites)) {
      for (const id of ids) if (partOf(id, job.parts) === job.part) devices.push({ id, site })
    }
    return new ReplayRun(job, devices, header.startS)
  }

  get deviceCount(): number {
    return this.indexOf.size
  }

  async run(wallStartMs: number): Promise<null> {
    const { lines } = await openRecordingLines(this.job.file)
    const speed = this.speed
    this.reachedS = this.startS
    this.beginPacing(this.startS, wallStartMs)
    for await (const { text, lineNumber } of lines) {
      if (this.finishing) break
      const tS = recordLineTime(text)
      if (Number.isNaN(tS)) throw new Error(`${this.job.file} line ${lineNumber}: no leading "t"`)
      if (speed === 'max') {
        while (!this.finishing && (tS > this.horizonS || !this.hasRoom())) {
          if (tS > this.horizonS) this.blockedAtHorizon()
          await sleep(2)
        }
      } else {
        // Due on the wall clock (less the time lost to the sessions), and only once the sessions
        // have room: otherwise simulated time waits (see job-base.ts).
        for (;;) {
          const nowMs = Date.now()
          const waitMs = ((tS - this.scheduleS(nowMs)) * 1000) / speed
          if (waitMs > 1) await sleep(waitMs)
          else if (this.finishing || this.hasRoom()) {
            this.released(nowMs)
            break
          } else {
            this.holdBack(Math.max(this.reachedS, tS), nowMs)
            await sleep(20)
          }
        }
      }
      this.reachedS = Math.max(this.reachedS, tS)
      const deviceId = lineDevice(text)
      const index = deviceId === undefined ? undefined : this.indexOf.get(deviceId)
      if (index === undefined) continue
      const message = decodeRecordLine(text, lineNumber)
      if (message.kind === 'up') this.uplinks++
      else this.acks++
      this.engine?.send(index, message.kind, message.payload, tS)
    }
    this.producedAll()
    await this.closeSessions(this.finishing ? 2000 : DRAIN_MS)
    return null
  }
}
