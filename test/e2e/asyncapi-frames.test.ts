import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { asyncApiDocument, deviceTopic, encodeSenmlJson } from '@plantwatt/contract'
import { createGateway, type Gateway } from '@plantwatt/gateway'
import { PlantIndex } from '@plantwatt/plant'
import { Processor } from '@plantwatt/processor'
import { TokenStore } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { asyncApiProblems, payloadErrors, payloadValidators } from '../support/interface-documents.ts'
import { type Frame, WsTestClient } from '../support/ws-client.ts'

// The AsyncAPI document as the gateway serves it, and the WebSocket frames a running gateway
// really sends (CONTRACT.md §5) checked against it: readings go through the real processor, which
// closes buckets and raises an idle alert on its own; the frames come over a real WebSocket.

const plant = new PlantIndex(examplePlant())
const SITE = 'yibin'
const LINE_1 = 'yibin/electrode/coating-1'
const OVEN_1_DEVICE = '860100000000123'
/** Held events: small, so that a replay from 0 starts with a gap. */
const HELD = 5

describe('the AsyncAPI document served by the gateway, and real frames against it', () => {
  let broker: Aedes
  let bus: Bus
  let processor: Processor
  let gateway: Gateway
  let base: string
  let token: string

  beforeAll(async () => {
    broker = await Aedes.createBroker()
    bus = createAedesBus(broker)
    processor = new Processor({
      plant,
      bus,
      logger: pino({ level: 'silent' }),
      publishIntervalMs: 20,
      pipeline: { detection: { eventLogCapacity: HELD } },
    })
    await processor.start()
    const tokens = await TokenStore.open(await mkdtemp(join(tmpdir(), 'plantwatt-asyncapi-')))
    token = (await tokens.issue({ name: 'integration', role: 'viewer' })).token
    gateway = await createGateway({
      plant,
      bus,
      tokens,
      logger: pino({ level: 'silent' }),
      isReady: () => true,
      registry: new Registry(),
      eventCapacity: HELD,
    })
    await gateway.start()
    base = `127.0.0.1:${await gateway.listen({ host: '127.0.0.1', port: 0 })}`
  })

  afterAll(async () => {
    await gateway.close()
    await processor.stop()
    await bus.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })

  it('serves the document at /api/v1/asyncapi.json without a token, and lists it in the OpenAPI document', async () => {
    const response = await fetch(`http://${base}/api/v1/asyncapi.json`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^application\/json/)
    const served = await response.json()
    expect(served).toEqual(asyncApiDocument())
    expect(await asyncApiProblems(served)).toEqual([])
    const openapi = (await (await fetch(`http://${base}/api/v1/openapi.json`)).json()) as { paths: object }
    expect(Object.keys(openapi.paths)).toContain('/api/v1/asyncapi.json')
  })

  it('sends only frames the document describes, field by field, on every channel', async () => {
    const document = (await (await fetch(`http://${base}/api/v1/asyncapi.json`)).json()) as Record<string, any>
    const validators = payloadValidators(document, { closed: true })
    const client = await WsTestClient.connect(`ws://${base}/ws?token=${token}`)
    const requests: object[] = [
      { op: 'subscribe', id: 'live', channel: 'live', scope: LINE_1 },
      { op: 'subscribe', id: 'alerts', channel: 'alerts', scope: SITE },
      { op: 'subscribe', id: 'sp', channel: 'setpoints', scope: SITE },
      { op: 'subscribe', id: 'b1', channel: 'buckets', scope: LINE_1, step: '1m' },
      { op: 'subscribe', id: 'nowhere', channel: 'live', scope: 'atlantis' },
    ]
    for (const request of requests) {
      expect(payloadErrors(validators, 'subscribe', request)).toEqual([])
      client.send(request)
    }
    await client.next((f) => f.type === 'subscribed' && f.id === 'b1')
    await client.next((f) => f.type === 'error' && f.id === 'nowhere')
    client.socket.send('{not json')
    await client.next((f) => f.type === 'error' && f.id === undefined)

    // Fifteen minutes of an idle oven (between offBelowW and runAboveW): buckets close and the
    // processor raises an idle alert after afterS (300 s), all on event time.
    const now = Math.floor(Date.now() / 1000)
    const records = []
    for (let i = 0; i <= 90; i++) {
      const t = now - 900 + i * 10
      records.push({ bt: t, n: 'power', u: 'W', v: 30_000 }, { n: 'energy', u: 'Wh', s: i * (30_000 / 360) })
    }
    await bus.publish(deviceTopic(SITE, OVEN_1_DEVICE, 'up'), encodeSenmlJson(records), { qos: 1 })
    await client.next((f) => f.type === 'bucket', 10_000)
    await client.next((f) => f.type === 'alert' && (f.alert as { kind: string }).kind === 'idle', 10_000)
    await client.next((f) => f.type === 'live' && (f.powerW as number) > 0, 10_000)

    // A setpoint event: the oven's tuner (issue 15) holds while the oven is idle and says so on
    // the setpoints channel. It may have come before the frames waited for above.
    await expect.poll(() => client.frames.some((f) => f.type === 'setpoint'), { timeout: 10_000 }).toBe(true)

    const unsubscribe = { op: 'unsubscribe', id: 'live' }
    expect(payloadErrors(validators, 'unsubscribe', unsubscribe)).toEqual([])
    client.send(unsubscribe)
    await client.next((f) => f.type === 'unsubscribed')

    // More alerts than are held, then a replay from 0: a gap first, then the held ones.
    for (let i = 0; i < HELD + 2; i++) {
      processor.state.detection.alerts.raise({
        kind: 'anomaly',
        scope: `${LINE_1}/coater-1-oven`,
        key: `asyncapi-${i}`,
        sinceS: now - 60,
        atS: now - 30,
        severity: 'warning',
        message: 'power above its baseline',
        data: { powerW: 31_000 },
      })
    }
    await expect
      .poll(async () => {
        const answer = await fetch(`http://${base}/api/v1/alerts`, { headers: { authorization: `Bearer ${token}` } })
        return ((await answer.json()) as unknown[]).length
      })
      .toBeGreaterThan(HELD)
    const resumed = await WsTestClient.connect(`ws://${base}/ws`, { authorization: `Bearer ${token}` })
    resumed.send({ op: 'subscribe', id: 'again', channel: 'alerts', scope: SITE, since: 0 })
    await resumed.next((f) => f.type === 'gap')
    await resumed.next((f) => f.type === 'alert')

    const frames: Frame[] = [...client.frames, ...resumed.frames]
    const types = new Set(frames.map((f) => f.type))
    expect([...types].sort()).toEqual(
      ['alert', 'bucket', 'error', 'gap', 'live', 'setpoint', 'subscribed', 'unsubscribed'].sort(),
    )
    for (const frame of frames) {
      expect(payloadErrors(validators, frame.type, frame), JSON.stringify(frame)).toEqual([])
    }
    await client.close()
    await resumed.close()
  })
})
