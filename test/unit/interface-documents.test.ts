import { demoPlant } from '@plantwatt/cli/demo-plant'
import {
  asyncApiDocument,
  decodeSenml,
  encodeSenmlCbor,
  encodeSetpointCommand,
  type PlantModel,
  type SenmlRecord,
} from '@plantwatt/contract'
import { generatePlant, type OutgoingMessage, PlantSimulation } from '@plantwatt/fleet'
import { Decoder } from 'cbor-x'
import { beforeAll, describe, expect, it } from 'vitest'
import { asyncApiProblems, payloadErrors, payloadValidators } from '../support/interface-documents.ts'

// The AsyncAPI document of the MQTT topics and WebSocket channels (CONTRACT.md §2–§5), checked
// with the AsyncAPI parser, and real device messages — what the fleet simulator sends, and the
// commands plantwatt sends it — checked against its payload schemas with ajv.

const document = asyncApiDocument() as Record<string, any>
const validators = payloadValidators(document, { closed: true })

/** A few minutes of the demo plant as the simulator sends it, and the acks of commands sent to it. */
function simulatedMessages(plant: PlantModel): { up: OutgoingMessage[]; acks: OutgoingMessage[]; commands: Buffer[] } {
  const startS = Math.floor(Date.now() / 1000) - 3600
  const simulation = new PlantSimulation({
    plant,
    seed: 3,
    startS,
    reportIntervalS: 10,
    // Half the devices in power-saving mode: they upload batches of buffered readings.
    faults: { psm: { share: 0.5, batchIntervalS: 120 } },
  })
  const up = simulation.advanceTo(startS + 300)
  const commands: Buffer[] = []
  let n = 0
  for (const site of plant.sites) {
    for (const area of site.areas) {
      for (const line of area.lines) {
        for (const equipment of line.equipment) {
          const tuning = equipment.tuning
          if (tuning === undefined) continue
          for (const device of equipment.devices) {
            // Inside the bounds and outside them: the device that owns the setpoint applies the
            // first and rejects the second; the others reject both.
            for (const value of [(tuning.min + tuning.max) / 2, tuning.max + tuning.maxStep]) {
              const command = {
                type: 'setpoint' as const,
                id: `cmd-${n++}`,
                name: tuning.setpoint,
                value,
                issuedAt: startS + 300,
              }
              commands.push(encodeSetpointCommand(command))
              simulation.receiveCommand(device, command, startS + 300)
            }
          }
        }
      }
    }
  }
  const later = simulation.advanceTo(startS + 400)
  return {
    up: [...up, ...later.filter((m) => m.kind === 'up')],
    acks: later.filter((m) => m.kind === 'ack'),
    commands,
  }
}

describe('AsyncAPI document', () => {
  it('is a valid AsyncAPI 3 document, without errors or warnings from the AsyncAPI parser', async () => {
    expect(document.asyncapi).toMatch(/^3\./)
    expect(await asyncApiProblems(document)).toEqual([])
    // The parser loads its rule sets on first use: seconds on a busy machine.
  }, 30_000)

  it('describes the device topics and the WebSocket channel of the contract', () => {
    const addresses = Object.values<{ address: string }>(document.channels).map((c) => c.address)
    expect(addresses.sort()).toEqual([
      '/ws',
      'sites/{site}/devices/{deviceId}/ack',
      'sites/{site}/devices/{deviceId}/down',
      'sites/{site}/devices/{deviceId}/up',
    ])
    const wsMessages = Object.keys(document.channels.ws.messages).sort()
    expect(wsMessages).toEqual(
      [
        'alert',
        'bucket',
        'error',
        'gap',
        'live',
        'setpoint',
        'subscribe',
        'subscribed',
        'unsubscribe',
        'unsubscribed',
      ].sort(),
    )
    expect(Object.keys(document.components.securitySchemes).sort()).toEqual([
      'bearer',
      'deviceCredentials',
      'tokenQuery',
    ])
  })

  it('gives every message an example, and every example is valid against its own payload schema', () => {
    for (const [name, message] of Object.entries<{ examples?: { payload: unknown }[] }>(document.components.messages)) {
      expect(message.examples?.length ?? 0, `${name} has an example`).toBeGreaterThan(0)
      for (const example of message.examples ?? []) {
        expect(payloadErrors(validators, name, example.payload), name).toEqual([])
      }
    }
  })

  it('refuses a payload that breaks it (the validators are not vacuous)', () => {
    expect(payloadErrors(validators, 'senmlJson', [])).not.toEqual([])
    expect(payloadErrors(validators, 'senmlJson', [{ n: 'power', v: 'high' }])).not.toEqual([])
    expect(payloadErrors(validators, 'senmlJson', [{ n: 'power', v: 1, x_: 1 }])).not.toEqual([])
    expect(payloadErrors(validators, 'setpointAck', { id: 'a', status: 'done' })).not.toEqual([])
    expect(payloadErrors(validators, 'live', { type: 'live', sub: 'a' })).not.toEqual([])
    // Fields the document does not name are refused by the test's validators.
    expect(payloadErrors(validators, 'subscribed', { type: 'subscribed', id: 'a', extra: 1 })).not.toEqual([])
    expect(
      payloadErrors(validators, 'subscribe', { op: 'subscribe', id: 'a', channel: 'news', scope: 's' }),
    ).not.toEqual([])
  })
})

describe('real device messages against the AsyncAPI document', () => {
  let messages: ReturnType<typeof simulatedMessages>
  beforeAll(() => {
    messages = simulatedMessages(demoPlant())
  })

  it('validates every SenML JSON pack the fleet simulator sends for the demo plant, batches included', () => {
    expect(messages.up.length).toBeGreaterThan(100)
    const batched = messages.up.filter((m) => (JSON.parse(m.payload.toString()) as unknown[]).length > 8)
    expect(batched.length, 'power-saving devices send batches').toBeGreaterThan(0)
    for (const message of messages.up) {
      expect(message.payload[0], 'SenML JSON starts with [').toBe(0x5b)
      expect(payloadErrors(validators, 'senmlJson', JSON.parse(message.payload.toString())), message.deviceId).toEqual(
        [],
      )
    }
  })

  it('validates the same packs as SenML CBOR, as plantwatt reads them', () => {
    const cbor = new Decoder({ useRecords: false, mapsAsObjects: true, int64AsNumber: true } as never)
    for (const message of messages.up.slice(0, 200)) {
      const records = JSON.parse(message.payload.toString()) as SenmlRecord[]
      const payload = encodeSenmlCbor(records)
      expect(payload[0]).not.toBe(0x5b)
      // The same readings come out of plantwatt's decoder: the document describes what it reads.
      const receivedAt = Date.now() / 1000
      expect(decodeSenml(payload, { receivedAt })).toEqual(decodeSenml(message.payload, { receivedAt }))
      expect(payloadErrors(validators, 'senmlCbor', cbor.decode(payload)), message.deviceId).toEqual([])
    }
  })

  it('validates the setpoint commands plantwatt sends and the acks devices answer, applied and rejected', () => {
    expect(messages.commands.length).toBeGreaterThan(1)
    for (const command of messages.commands) {
      expect(payloadErrors(validators, 'setpointCommand', JSON.parse(command.toString()))).toEqual([])
    }
    const acks = messages.acks.map((m) => JSON.parse(m.payload.toString()))
    expect(new Set(acks.map((a) => a.status))).toEqual(new Set(['applied', 'rejected']))
    for (const ack of acks) expect(payloadErrors(validators, 'setpointAck', ack)).toEqual([])
    // The contract's own examples (CONTRACT.md §3), with the device's time.
    expect(payloadErrors(validators, 'setpointAck', { id: '7f0c', status: 'applied', t: 1732250030 })).toEqual([])
    expect(payloadErrors(validators, 'setpointAck', { id: '7f0c', status: 'rejected', reason: 'x', t: 1 })).toEqual([])
  })

  it('validates generated plants of other sizes too', () => {
    for (const devices of [40, 1000]) {
      const { up } = simulatedMessages(generatePlant({ devices, seed: devices }))
      for (const message of up.slice(0, 500)) {
        expect(payloadErrors(validators, 'senmlJson', JSON.parse(message.payload.toString()))).toEqual([])
      }
    }
  })
})
