// The tuning loop on the bus (issue 15): acks in, commands out on the devices' `down` topics,
// setpoint events out on `plantwatt/v1/setpoints` with their seq, and the gateway's requests
// (`setpoints-sync`, `setpoint-action`, `tuning`, the `setpoints` query) answered. The decisions
// are the TuningLoop's; this module only moves bytes (docs/internal-bus.md).

import { type BucketEvent, type BucketRow, LocalCalendar } from '@plantwatt/accounting'
import {
  type Bus,
  decodeMessage,
  encodeMessage,
  SETPOINT_ACTION_TOPIC,
  SETPOINTS_SYNC_TOPIC,
  SETPOINTS_TOPIC,
  type SetpointActionRequest,
  type SetpointEvents,
  type SyncRequest,
  syncAnswerMessages,
  TUNING_TOPIC,
  type TuningRequest,
  type Unsubscribe,
} from '@plantwatt/bus'
import type { Alert, LiveFigures } from '@plantwatt/contract'
import {
  type BucketStep,
  deviceTopic,
  encodeSetpointCommand,
  parseDeviceTopic,
  parseSetpointAck,
} from '@plantwatt/contract'
import type { Sequenced } from '@plantwatt/detection'
import type { ReadingPipeline } from '@plantwatt/pipeline'
import { isWithinScope, type PlantIndex } from '@plantwatt/plant'
import type { TunerOptions } from '@plantwatt/tuning'
import type { Logger } from 'pino'
import { type TuningCheckpoint, TuningLoop } from './tuning-loop.ts'

const round3 = (x: number) => Math.round(x * 1000) / 1000

/** Setpoint events per message of a sync answer, as for alerts. */
const MODES = new Set(['auto', 'advise', 'off'])

export interface TuningServiceOptions {
  plant: PlantIndex
  bus: Bus
  logger: Logger
  pipeline: ReadingPipeline
  tuner?: TunerOptions
  eventCapacity?: number
  restored?: TuningCheckpoint
}

export class TuningService {
  readonly loop: TuningLoop
  /** Per site, for "today" in its local time (savedTodayWh). */
  private readonly calendars = new Map<string, LocalCalendar>()

  constructor(private readonly options: TuningServiceOptions) {
    const { plant, pipeline, bus, logger } = options
    this.loop = new TuningLoop({
      plant,
      alerts: pipeline.detection.alerts,
      tuner: options.tuner,
      eventCapacity: options.eventCapacity,
      restored: options.restored,
      // QoS 1, to the device's persistent session: a sleeping NB-IoT device gets it at its next
      // wake (CONTRACT.md §3). The id is the decision's: sent again after a restart, it is the same.
      sendCommand: (site, deviceId, command) => {
        bus
          .publish(deviceTopic(site, deviceId, 'down'), encodeSetpointCommand(command), { qos: 1 })
          .catch((error) => logger.warn({ err: error, deviceId, id: command.id }, 'setpoint command not published'))
      },
    })
    pipeline.onAccepted = (device, readings) => this.loop.readings(device, readings)
  }

  /** A device's message on its `ack` topic, durable already (journal or bus). */
  ingestAck(topic: string, payload: Uint8Array): void {
    const parsed = parseDeviceTopic(topic)
    const device = parsed?.kind === 'ack' ? this.options.plant.device(parsed.deviceId) : undefined
    if (!device || device.siteId !== parsed!.site) {
      this.loop.stats.acksRejected++
      this.options.logger.warn({ topic: topic.slice(0, 200) }, 'ack from no device of the plant: ignored')
      return
    }
    if (!this.loop.ack(device, parseSetpointAck(payload))) {
      this.options.logger.warn({ deviceId: device.deviceId }, 'ack refused: not a CONTRACT.md §3 ack of a tuned device')
    }
  }

  /** Detection's offline alerts of tuned equipment's devices hold their tuner (raised) or resume it. */
  noteAlerts(alerts: readonly Sequenced<Alert>[]): void {
    for (const { event } of alerts) {
      if (event.kind !== 'offline' || event.state === 'acked') continue
      const deviceId = event.data.deviceId
      if (typeof deviceId === 'string') this.loop.deviceOnline(deviceId, event.state === 'cleared', event.at)
    }
  }

  async subscribe(publishAll: () => void): Promise<Unsubscribe[]> {
    const { bus } = this.options
    return [
      await bus.subscribe(SETPOINTS_SYNC_TOPIC, (_topic, payload) => this.onSync(payload)),
      await bus.subscribe(SETPOINT_ACTION_TOPIC, (_topic, payload) => {
        this.onAction(payload)
        publishAll()
      }),
      await bus.subscribe(TUNING_TOPIC, (_topic, payload) => {
        this.onTuning(payload)
        publishAll()
      }),
    ]
  }

  /** Pending setpoint events out on the bus, QoS 1: a subscriber never misses one (§5). */
  publishEvents(): void {
    const events = this.loop.takeEvents()
    if (events.length === 0) return
    const message: SetpointEvents = { events: events.map(({ seq, event }) => ({ seq, event })) }
    this.send(message)
  }

  /**
   * The optional `savedWh` and `savedCo2G` of a bucket (CONTRACT.md §5), where tuned equipment
   * lie within its scope: the savings of its minutes, and their CO2 at the bucket's own factor
   * (its co2G per energyWh: the scope's share of grid import at the hour's intensity, §7). The
   * bucket ends where the site's calendar says (a local day has 23 or 25 hours when clocks change).
   */
  addSavings(bucket: BucketEvent): void {
    if (!this.loop.hasTunedWithin(bucket.scope)) return
    const start = bucket.t / 60_000
    const endMs = this.calendarOf(bucket.scope.split('/', 1)[0]!).bucketEnd(bucket.step, start) * 60_000
    const wh = this.loop.savedWh(bucket.scope, bucket.t, endMs)
    bucket.savedWh = round3(wh)
    bucket.savedCo2G = bucket.energyWh > 0 ? round3((wh * bucket.co2G) / bucket.energyWh) : 0
  }

  /** A bucket row of the history with the optional savings its bucket events carry (addSavings). */
  withSavings(row: BucketRow, scope: string, step: BucketStep): BucketRow {
    if (!this.loop.hasTunedWithin(scope)) return row
    const bucket = { ...row, scope, step, revision: 0 } as BucketEvent
    this.addSavings(bucket)
    return { ...row, savedWh: bucket.savedWh, savedCo2G: bucket.savedCo2G }
  }

  /**
   * Live figures with `savedTodayWh` where tuned equipment lie within the scope: the saved minutes
   * of the site's local day up to the figures' `at` (the site clock, §5).
   */
  withSavedToday(scope: string, figures: LiveFigures): LiveFigures {
    if (figures.at === null || !this.loop.hasTunedWithin(scope)) return figures
    const calendar = this.calendarOf(scope.split('/', 1)[0]!)
    const minute = Math.floor(figures.at / 60_000)
    const dayStartMs = calendar.dayStart(calendar.dayNumber(minute)) * 60_000
    return { ...figures, savedTodayWh: round3(this.loop.savedWh(scope, dayStartMs, figures.at + 1)) }
  }

  private calendarOf(siteId: string): LocalCalendar {
    let calendar = this.calendars.get(siteId)
    if (!calendar) {
      calendar = new LocalCalendar(this.options.plant.sites.get(siteId)!.spec.timezone)
      this.calendars.set(siteId, calendar)
    }
    return calendar
  }

  /** GET /api/v1/setpoints through the gateway: the tuned equipment within `scope`. */
  setpointsQuery(params: unknown) {
    const scope = (params as { scope?: unknown } | null)?.scope
    if (scope !== undefined && typeof scope !== 'string') throw new Error('bad setpoints query')
    return this.loop.status((s) => scope === undefined || isWithinScope(s, scope))
  }

  private onSync(payload: Buffer): void {
    let request: SyncRequest
    try {
      request = decodeMessage<SyncRequest>(payload)
    } catch {
      return
    }
    this.publishEvents()
    const log = this.loop.log
    const messages = syncAnswerMessages(
      request,
      { firstHeldSeq: log.firstHeldSeq, lastSeq: log.lastSeq, since: (after) => log.since(after).events },
      () => this.loop.openProposals(),
      (events, sync): SetpointEvents => ({ events, sync }),
    )
    for (const message of messages) this.send(message)
  }

  private onAction(payload: Buffer): void {
    let request: SetpointActionRequest
    try {
      request = decodeMessage<SetpointActionRequest>(payload)
    } catch {
      return
    }
    if (typeof request?.id !== 'string' || (request.action !== 'approve' && request.action !== 'reject')) return
    const done = this.loop.action(request.id, request.action)
    this.options.logger.info({ eventId: request.id, action: request.action, by: request.by, done }, 'setpoint action')
    this.publishEvents()
  }

  private onTuning(payload: Buffer): void {
    let request: TuningRequest
    try {
      request = decodeMessage<TuningRequest>(payload)
    } catch {
      return
    }
    if (!MODES.has(request?.mode)) return
    this.loop.setMode(request.mode)
    this.options.logger.info({ mode: request.mode, by: request.by }, 'tuning mode set for every tuner')
    this.publishEvents()
  }

  private send(message: SetpointEvents): void {
    this.options.bus
      .publish(SETPOINTS_TOPIC, encodeMessage(message), { qos: 1 })
      .catch((error) => this.options.logger.warn({ err: error }, 'setpoint events not published'))
  }
}
