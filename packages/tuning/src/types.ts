// Inputs and outputs of a Tuner. Times are epoch milliseconds of event time (CONTRACT.md §7): the
// readings' own timestamps and the device's time in an ack, never the wall clock.

import type { SetpointCommand, SetpointEvent, TuningMode } from '@plantwatt/contract'

/** The equipment's state as the processor's detection judges it (CONTRACT.md §7 idle rules). */
export type EquipmentState = 'running' | 'idle' | 'off' | 'unknown'

/** One instant of the tuned equipment's readings; any field may be missing. */
export interface TunerReading {
  /** Reading time, epoch ms. */
  t: number
  /** Value of the tuning setpoint measurement the device reports (e.g. `fan_hz`). */
  setpoint?: number
  /** Value of the constraint measure (e.g. `solvent_ppm`). */
  constraint?: number
  /** The equipment's power (W): the sum of its devices' latest power. */
  powerW?: number
}

/** A device's answer to a command (CONTRACT.md §3); `t` is the device's time, epoch ms. */
export interface TunerAck {
  id: string
  status: 'applied' | 'rejected'
  reason?: string
  t: number
}

/** An alert the processor should raise or clear (CONTRACT.md §5 kinds `constraint` and `command`). */
export interface AlertRequest {
  kind: 'constraint' | 'command'
  state: 'raised' | 'cleared'
  severity: 'warning' | 'critical'
  scope: string
  /** Event time of this change, ms. */
  at: number
  /** Event time at which the condition began, ms. */
  since: number
  message: string
  data: Record<string, unknown>
}

/** Energy the tuner estimates it saved over [fromMs, toMs) (see savings.ts for how). */
export interface SavedEnergy {
  fromMs: number
  toMs: number
  wh: number
}

export interface TunerOutput {
  /** Commands to publish on the device's `down` topic, QoS 1 (CONTRACT.md §3). */
  commands: SetpointCommand[]
  /** `setpoint` events for the `setpoints` channel and GET /api/v1/setpoints (CONTRACT.md §5). */
  events: SetpointEvent[]
  alerts: AlertRequest[]
  saved: SavedEnergy[]
}

export interface TunerOptions {
  /**
   * Least time between a move taking effect (a reading shows the new value) and the next decision,
   * long enough to see the effect: the constraint is judged on readings from its last 40 % only.
   * Default 240 s.
   */
  dwellS?: number
  /** Hold when the constraint's latest reading is this far behind the equipment's clock. Default 600 s. */
  staleAfterS?: number
  /** After a breach step, the least time before another step up. Default 90 s. */
  breachReactS?: number
  /** Least readings in a judged window. Default 3. */
  minReadings?: number
  /** After a failed or rejected command, an unresponsive process or an operator's reject: hold this long. Default 1800 s. */
  backoffS?: number
}

export type { SetpointCommand, SetpointEvent, TuningMode }
