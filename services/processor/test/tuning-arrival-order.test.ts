import { deserialize, serialize } from 'node:v8'
import type { Alert, Reading, SetpointAck, SetpointCommand, SetpointEvent } from '@plantwatt/contract'
import { AlertBook, EventLog } from '@plantwatt/detection'
import { type DeviceInfo, type EquipmentNode, PlantIndex } from '@plantwatt/plant'
import { describe, expect, it } from 'vitest'
// The oven-like process of the tuner's own tests (fan lag, solvent response, power ∝ f³).
import { Toy } from '../../../packages/tuning/test/toy.ts'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { type TuningCheckpoint, TuningLoop } from '../src/tuning-loop.ts'

// Issue 15, CONTRACT.md §3 and §7: the same readings and acks make the same setpoint events
// whatever order they arrive in, as long as each device's readings come in its own time order.
// A device's ack travels apart from its readings (the broker takes uplinks on its fast path and
// acks on aedes' route), so under load it may reach the processor after the device's next
// readings, those that show the new value: the tuner must still see the ack in its event-time
// place. Here one closed-loop run is recorded as the devices sent it, then fed again to fresh
// tuning loops in other arrival orders; every one must make the same moves, ids, states, reasons.

const plant = new PlantIndex(generatePlant({ devices: 60, seed: 5 }))
const oven = [...plant.scopes.values()].find(
  (node): node is EquipmentNode => node.level === 'equipment' && (node as EquipmentNode).spec.tuning !== undefined,
)!
// The simulator's layout: the first device meters the oven's power, the last reports the fan and
// the solvent concentration (and so takes the commands).
const meter = plant.device(oven.spec.devices[0]!)!
const sensor = plant.device(oven.spec.devices.at(-1)!)!
const TUNER = { dwellS: 240 }
const T0_S = Date.UTC(2026, 0, 5, 8, 0, 0) / 1000
const STEP_S = 10

type Message = { device: DeviceInfo; readings: Reading[] } | { device: DeviceInfo; ack: SetpointAck }

const reading = (name: string, value: number, time: number): Reading => ({
  name,
  value,
  time,
  field: 'v',
  unit: undefined,
})

function newLoop(sendCommand: (command: SetpointCommand) => void = () => {}, restored?: TuningCheckpoint) {
  return new TuningLoop({
    plant,
    alerts: new AlertBook(new EventLog<Alert>(10_000), 600),
    sendCommand: (_site, _device, command) => sendCommand(command),
    tuner: TUNER,
    restored,
  })
}

/**
 * One message to the loop. An ack answers its command at once: the tuner's `applied` or
 * `rejected` is out as soon as the ack is in and the watermark has passed its time, not held
 * until the command's timeout.
 */
function deliver(loop: TuningLoop, m: Message): void {
  if (!('ack' in m)) {
    loop.readings(m.device, m.readings)
    return
  }
  expect(loop.ack(m.device, m.ack)).toBe(true)
  const { id, status, t } = m.ack
  // Every device of the oven has reported past the ack: nothing can come before it any more.
  const latest = loop.checkpoint().equipment[oven.scope]!.latest
  if (t === undefined || latest.some((l) => l === null || l < t * 1000)) return
  const answered = loop.log.since(0).events.some(({ event }) => event.id === id && event.status === status)
  expect(answered, `${status} of ${id} out once its ack is in`).toBe(true)
}

/** The loop's setpoint events, without their seq. */
const eventsOf = (loop: TuningLoop): SetpointEvent[] => loop.log.since(0).events.map(({ event }) => event)

/**
 * A closed-loop run, the messages in the order the devices sent them: each step the sensor's
 * reading, the meter's, then the sensor applies the commands it received before this step and
 * acks each at this step's time (so the first reading showing the new value is the next step's);
 * the 4th of every 5 commands it rejects, the 3rd of every 7 it never answers.
 */
function record(seconds: number) {
  const toy = new Toy()
  toy.noise = 2
  const received: SetpointCommand[] = []
  const loop = newLoop((command) => received.push(command))
  const messages: Message[] = []
  let commands = 0
  const send = (m: Message) => {
    messages.push(m)
    deliver(loop, m)
  }
  for (let s = STEP_S; s <= seconds; s += STEP_S) {
    const t = T0_S + s
    toy.step(STEP_S)
    const taken = received.splice(0)
    const ppm = Math.round((toy.ppm + toy.wobble()) * 10) / 10
    send({ device: sensor, readings: [reading('fan_hz', toy.sp, t), reading('solvent_ppm', ppm, t)] })
    send({ device: meter, readings: [reading('power', Math.round(toy.powerW()), t)] })
    for (const command of taken) {
      // Now and then the device refuses a command, or never answers one (the command fails).
      commands++
      if (commands % 7 === 3) continue
      if (commands % 5 === 4) {
        send({ device: sensor, ack: { id: command.id, status: 'rejected', reason: 'local control', t } })
        continue
      }
      toy.sp = command.value
      send({ device: sensor, ack: { id: command.id, status: 'applied', t } })
    }
  }
  return { messages, events: eventsOf(loop), loop }
}

/** Each ack delivered after the next `k` readings of the equipment's devices (overtaken in transit). */
function acksOvertaken(messages: readonly Message[], k: number): Message[] {
  const out: Message[] = []
  const waiting: { ack: Message; after: number }[] = []
  for (const m of messages) {
    if ('ack' in m) {
      waiting.push({ ack: m, after: k })
      continue
    }
    out.push(m)
    for (const w of waiting) w.after--
    while (waiting.length > 0 && waiting[0]!.after <= 0) out.push(waiting.shift()!.ack)
  }
  for (const w of waiting) out.push(w.ack)
  return out
}

/** The meter's readings each delivered after the sensor's next `k` messages (the meter lags behind). */
function meterLagging(messages: readonly Message[], k: number): Message[] {
  const out: Message[] = []
  const held: { m: Message; after: number }[] = []
  for (const m of messages) {
    if (m.device === meter) {
      held.push({ m, after: k })
      continue
    }
    out.push(m)
    for (const h of held) h.after--
    while (held.length > 0 && held[0]!.after <= 0) out.push(held.shift()!.m)
  }
  for (const h of held) out.push(h.m)
  return out
}

describe('tuning makes the same moves whatever the arrival order of readings and acks', () => {
  const recorded = record(6 * 3600)
  const applied = recorded.events.filter((e) => e.status === 'applied')
  const acks = recorded.messages.filter((m) => 'ack' in m).length

  it('the recorded run moves, and each move is applied by its ack a step before a reading shows it', () => {
    expect(applied.length).toBeGreaterThanOrEqual(6)
    for (const e of applied) expect(e.reason).toBe('the device applied the command')
    expect(recorded.events.filter((e) => e.status === 'rejected').length).toBeGreaterThanOrEqual(1)
    expect(recorded.events.filter((e) => e.status === 'failed').length).toBeGreaterThanOrEqual(1)
    expect(recorded.loop.stats.late).toBe(0)
    expect(recorded.loop.stats.acksBehind).toBe(0)
  })

  it('acks that reach the processor after the readings showing the new value', () => {
    for (const k of [1, 2, 4, 6]) {
      const loop = newLoop()
      for (const m of acksOvertaken(recorded.messages, k)) deliver(loop, m)
      expect(eventsOf(loop), `acks overtaken by ${k} readings`).toEqual(recorded.events)
      expect(loop.stats.late).toBe(0)
      // Counted: each ack came after a later reading of its own device.
      expect(loop.stats.acksBehind).toBe(acks)
    }
  })

  it('a lagging meter: the decisions wait for it, and with it far behind, acks come before their decision', () => {
    for (const k of [1, 3]) {
      const order = meterLagging(recorded.messages, k)
      if (k === 3) {
        // The first ack is in before the meter's reading at its command's decision time.
        const firstAck = order.findIndex((m) => 'ack' in m)
        const sent = recorded.events.find((e) => e.status === 'sent')!
        const decision = order.findIndex(
          (m) => m.device === meter && 'readings' in m && m.readings[0]!.time * 1000 === sent.at,
        )
        expect(firstAck).toBeLessThan(decision)
      }
      const loop = newLoop()
      for (const m of order) deliver(loop, m)
      expect(eventsOf(loop), `meter ${k} messages behind`).toEqual(recorded.events)
    }
  })

  it('a checkpoint taken while readings wait for an ack resumes the same moves', () => {
    const order = acksOvertaken(recorded.messages, 4)
    // Restart just after each of the first acks' readings arrived ahead of it.
    const cuts = order.flatMap((m, i) => ('ack' in m ? [i - 1] : [])).slice(0, 3)
    expect(cuts.length).toBe(3)
    for (const cut of cuts) {
      const first = newLoop()
      // As the processor's checkpoint file writes it (v8 serialize).
      for (const m of order.slice(0, cut)) deliver(first, m)
      const checkpoint = deserialize(serialize(first.checkpoint())) as TuningCheckpoint
      const second = newLoop(undefined, checkpoint)
      for (const m of order.slice(cut)) deliver(second, m)
      expect(eventsOf(second), `restarted before message ${cut}`).toEqual(recorded.events)
    }
  })
})
