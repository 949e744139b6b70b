// A simulate job in one worker process: the plant simulation for its share of the fleet (whole
// lines), its messages handed to the devices' sessions and written to its part of the
// recording, the setpoint commands the devices receive fed back into the simulation.

import { type PlantModel, parseSetpointCommand } from '@plantwatt/contract'
import { PlantSimulation, type TruthJson } from '../model/index.ts'
import { RecordingWriter } from '../recording/index.ts'
import { fleetDevicesOf } from '../sessions/devices.ts'
import type { FleetDevice } from '../sessions/types.ts'
import { FleetJob, sleep } from './job-base.ts'
import type { SimulateJob } from './protocol.ts'

/** How long the sessions may take, after the last message, to get it acknowledged. */
const DRAIN_MS = 30_000

export class SimulateRun extends FleetJob {
  private readonly job: SimulateJob
  private readonly plant: PlantModel
  private readonly indexOf = new Map<string, number>()
  private readonly ownDevices: ReadonlySet<string>
  private simulation: PlantSimulation | undefined

  constructor(job: SimulateJob) {
    const plant = JSON.parse(job.plantJson) as PlantModel
    const own = new Set(job.devices)
    const devices = fleetDevicesOf(plant).filter((device) => own.has(device.id))
    super(job.speed, job.sessions, devices, (device, payload) => this.onDownlink(device, payload))
    this.job = job
    this.plant = plant
    this.ownDevices = own
    for (const [index, device] of devices.entries()) this.indexOf.set(device.id, index)
  }

  get deviceCount(): number {
    return this.indexOf.size
  }

  async run(startS: number, wallStartMs: number): Promise<TruthJson | null> {
    const { job } = this
    const simulation = new PlantSimulation({
      plant: this.plant,
      seed: job.seed,
      startS,
      reportIntervalS: job.reportIntervalS,
      faults: job.faults,
      emitDevices: this.ownDevices,
    })
    this.simulation = simulation
    const recorder =
      job.recordPath && job.recordHeader
        ? RecordingWriter.open(job.recordPath, { ...job.recordHeader, startS, createdAt: new Date().toISOString() })
        : null
    const endS = job.durationS === null ? Number.POSITIVE_INFINITY : startS + job.durationS
    // Advance in steps of about a thousand messages (at least one report interval), so that the
    // sessions' backlog bounds how far the simulation runs ahead of what the brokers have taken,
    // and the event loop (sockets, reports) runs between steps even when the run is behind.
    const stepS = job.reportIntervalS * Math.min(3600, Math.max(1, Math.floor(1000 / Math.max(1, this.deviceCount))))
    this.reachedS = startS
    this.beginPacing(startS, wallStartMs)
    while (!this.finishing && this.reachedS < endS) {
      const nowMs = Date.now()
      const dueS = Math.min(endS, this.scheduleS(nowMs))
      let targetS = dueS
      if (this.speed === 'max' && targetS <= this.reachedS && targetS < endS) this.blockedAtHorizon()
      if (targetS > this.reachedS) {
        if (this.hasRoom()) {
          this.released(nowMs)
          targetS = Math.min(targetS, this.reachedS + stepS)
        } else {
          // The sessions hold what they can: simulated time waits (see job-base.ts).
          this.holdBack(this.reachedS, nowMs)
          targetS = this.reachedS
        }
      }
      if (targetS > this.reachedS) {
        for (const message of simulation.advanceTo(targetS)) {
          const index = this.indexOf.get(message.deviceId)
          if (index === undefined) continue
          if (message.kind === 'up') this.uplinks++
          else this.acks++
          this.engine?.send(index, message.kind, message.payload, message.sendAtS)
          if (recorder) {
            await recorder.write({
              t: message.sendAtS,
              site: message.site,
              deviceId: message.deviceId,
              kind: message.kind,
              payload: message.payload,
            })
            this.recorded++
          }
        }
        this.reachedS = targetS
        // More is due (max speed, or a step short of the schedule): go on after I/O has run.
        if (this.speed === 'max' || targetS < dueS) {
          await new Promise((resolve) => setImmediate(resolve))
          continue
        }
      }
      await sleep(this.speed === 'max' ? 2 : 20)
    }
    this.producedAll()
    await recorder?.close()
    await this.closeSessions(this.finishing ? 2000 : DRAIN_MS)
    return job.truth ? simulation.truth.toJSON() : null
  }

  protected override pendingInSimulation(): number {
    return this.simulation?.pendingMessages ?? 0
  }

  private onDownlink(device: FleetDevice, payload: Buffer): void {
    const command = parseSetpointCommand(payload)
    if (!command || !this.simulation) {
      this.downlinksRefused++
      return
    }
    this.commandsReceived++
    // The device applies it at its next sample while awake (PlantSimulation.receiveCommand).
    this.simulation.receiveCommand(device.id, command, this.reachedS)
  }
}
