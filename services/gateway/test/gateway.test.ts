import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus, encodeLiveBatch, type LiveBatch, liveTopic } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { TokenStore } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { upgradeStatus, WsTestClient } from '../../../test/support/ws-client.ts'
import { createGateway, type Gateway } from '../src/gateway.ts'
import { type ProcessorStandIn, startProcessorStandIn, zeroFigures } from './processor-stand-in.ts'

// The gateway alone on a real socket, fed live figures over a real in-process bus the way the
// processor feeds it (CONTRACT.md §5 live, §6 plant/live/health, §4 tokens).

const plant = new PlantIndex(examplePlant())
const OVEN = 'yibin/electrode/coating-1/coater-1-oven'

function update(at: number, powerW: number): LiveBatch {
  const figures = (scope: string) => ({ ...zeroFigures(scope, at, 470), powerW })
  return {
    site: 'yibin',
    at,
    gridGPerKWh: 470,
    scopes: [figures('yibin'), figures('yibin/electrode/coating-1'), figures(OVEN)],
  }
}

describe('gateway', () => {
  let broker: Aedes
  let bus: Bus
  let gateway: Gateway
  let base: string
  let admin: string
  let lineViewer: string
  let ready = false
  let processor: ProcessorStandIn

  beforeAll(async () => {
    broker = await Aedes.createBroker()
    bus = createAedesBus(broker)
    processor = await startProcessorStandIn(bus, plant)
    const tokens = await TokenStore.open(await mkdtemp(join(tmpdir(), 'plantwatt-gw-')))
    admin = (await tokens.issue({ name: 'admin', role: 'admin' })).token
    lineViewer = (await tokens.issue({ name: 'line 2', role: 'viewer', scopes: ['yibin/electrode/coating-2'] })).token
    gateway = await createGateway({
      plant,
      bus,
      tokens,
      logger: pino({ level: 'silent' }),
      isReady: () => ready,
      registry: new Registry(),
    })
    await gateway.start()
    base = `127.0.0.1:${await gateway.listen({ host: '127.0.0.1', port: 0 })}`
  })

  afterAll(async () => {
    await gateway.close()
    await bus.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })

  it('announces its live interests in full when it starts (none yet)', () => {
    expect(processor.interests).toMatchObject([{ kind: 'full', scopes: [], gateway: gateway.instanceId }])
  })

  it('answers /healthz always and /readyz only once ready, without a token', async () => {
    expect((await fetch(`http://${base}/healthz`)).status).toBe(200)
    expect((await fetch(`http://${base}/readyz`)).status).toBe(503)
    ready = true
    expect((await fetch(`http://${base}/readyz`)).status).toBe(200)
  })

  it('refuses the API without a token (401) and errors have the contract shape', async () => {
    const response = await fetch(`http://${base}/api/v1/plant`)
    expect(response.status).toBe(401)
    expect(await response.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } })
    const wrong = await fetch(`http://${base}/api/v1/plant`, { headers: { authorization: 'Bearer nope' } })
    expect(wrong.status).toBe(401)
  })

  it('serves the plant tree, limited to the scopes of a scoped token', async () => {
    const full: any = await (
      await fetch(`http://${base}/api/v1/plant`, { headers: { authorization: `Bearer ${admin}` } })
    ).json()
    const lines = full.sites[0].children[0].children.map((line: { id: string }) => line.id)
    expect(lines).toEqual(['coating-1', 'coating-2'])
    const oven = full.sites[0].children[0].children[0].children[0]
    expect(oven.equipment).toMatchObject({ ratedPowerW: 250000, idle: { offBelowW: 2000, source: 'model' } })

    expect(full.sites[0].timezone).toBe('Asia/Shanghai')
    const shallow: any = await (
      await fetch(`http://${base}/api/v1/plant?depth=line`, { headers: { authorization: `Bearer ${admin}` } })
    ).json()
    const shallowLine = shallow.sites[0].children[0].children[0]
    expect(shallowLine).toMatchObject({ id: 'coating-1', level: 'line' })
    expect(shallowLine.children).toBeUndefined()

    const scoped: any = await (
      await fetch(`http://${base}/api/v1/plant`, { headers: { authorization: `Bearer ${lineViewer}` } })
    ).json()
    expect(scoped.sites[0].children[0].children.map((line: { id: string }) => line.id)).toEqual(['coating-2'])
  })

  it('answers /api/v1/live with 404 for an unknown scope and 403 outside the token scopes', async () => {
    const get = (scope: string, token: string) =>
      fetch(`http://${base}/api/v1/live?scope=${encodeURIComponent(scope)}`, {
        headers: { authorization: `Bearer ${token}` },
      })
    expect((await get('yibin/nowhere', admin)).status).toBe(404)
    expect((await get(OVEN, lineViewer)).status).toBe(403)
    expect((await get('yibin/electrode/coating-2', lineViewer)).status).toBe(200)
  })

  it('refuses a WebSocket upgrade without a token with 401', async () => {
    expect(await upgradeStatus(`ws://${base}/ws`)).toBe(401)
  })

  it('sends a live snapshot at once, then updates at most once a second', async () => {
    const client = await WsTestClient.connect(`ws://${base}/ws?token=${admin}`)
    client.send({ op: 'subscribe', id: 'a', channel: 'live', scope: OVEN })
    expect(await client.next((frame) => frame.type === 'subscribed')).toEqual({ type: 'subscribed', id: 'a' })
    const snapshot = await client.next((frame) => frame.type === 'live')
    expect(snapshot).toMatchObject({ type: 'live', sub: 'a', scope: OVEN })
    const snapshotAt = Date.now()

    // Three updates in quick succession coalesce: the client sees the newest.
    const t0 = 1_732_250_000_000
    for (const [i, power] of [1000, 2000, 3000].entries()) {
      await bus.publish(liveTopic('yibin'), encodeLiveBatch(update(t0 + i * 1000, power)))
    }
    const frame = await client.next((f) => f.type === 'live', 3000)
    expect(Date.now() - snapshotAt).toBeGreaterThanOrEqual(950)
    expect(frame).toMatchObject({ sub: 'a', scope: OVEN, powerW: 3000, at: t0 + 2000, gridGPerKWh: 470 })
    expect(client.frames.filter((f) => f.type === 'live')).toHaveLength(2)
    await client.close()
  })

  it('answers bad frames with an error frame and keeps the connection open', async () => {
    const client = await WsTestClient.connect(`ws://${base}/ws`, { authorization: `Bearer ${lineViewer}` })
    client.socket.send('not json')
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'bad_frame' })
    client.send({ op: 'subscribe', id: 'x', channel: 'live', scope: 'yibin/nowhere' })
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ id: 'x', code: 'unknown_scope' })
    client.send({ op: 'subscribe', id: 'y', channel: 'live', scope: OVEN })
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ id: 'y', code: 'forbidden' })
    client.send({ op: 'subscribe', id: 'z', channel: 'live', scope: 'yibin/electrode/coating-2' })
    expect(await client.next((f) => f.type === 'live')).toMatchObject({ sub: 'z', scope: 'yibin/electrode/coating-2' })
    client.send({ op: 'unsubscribe', id: 'z' })
    expect(await client.next((f) => f.type === 'unsubscribed')).toEqual({ type: 'unsubscribed', id: 'z' })
    await client.close()
  })
})
