import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, bucketsTopic, createAedesBus, encodeMessage } from '@plantwatt/bus'
import { createGateway, type Gateway } from '@plantwatt/gateway'
import { PlantIndex } from '@plantwatt/plant'
import { Processor } from '@plantwatt/processor'
import { TokenStore } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type Frame, WsTestClient } from '../support/ws-client.ts'

// The gateway's reliable channels and HTTP API over real sockets (issue 6 "done when"), fed by the
// real processor over the in-process bus: alerts are raised in the processor's own alert book,
// published by its publish loop, synced and replayed by the gateway's replica.

const plant = new PlantIndex(examplePlant())
const SITE = 'yibin'
const LINE_1 = 'yibin/electrode/coating-1'
const LINE_2 = 'yibin/electrode/coating-2'
const OVEN_1 = `${LINE_1}/coater-1-oven`
const OVEN_2 = `${LINE_2}/coater-2-oven`
/** Events the processor and gateway hold: small, so that a test can make the ring wrap. */
const HELD = 50

describe('gateway channels and API, with the real processor', () => {
  let broker: Aedes
  let bus: Bus
  let processor: Processor
  let gateway: Gateway
  let base: string
  const token: Record<'admin' | 'operator' | 'viewer' | 'line2Viewer' | 'line1Operator', string> = {} as never
  let tokens: TokenStore
  let key = 0

  /** Raises `n` anomaly alerts on `scope` in the processor; they reach the bus on its next round. */
  function raise(n: number, scope = OVEN_1, message = 'over baseline') {
    const ids: string[] = []
    for (let i = 0; i < n; i++) {
      const alert = processor.state.detection.alerts.raise({
        kind: 'anomaly',
        scope,
        key: `k${key++}`,
        sinceS: 1_732_250_000 + key,
        atS: 1_732_250_060 + key,
        severity: 'warning',
        message,
        data: { powerW: 1000 },
      })
      ids.push(alert!.id)
    }
    return ids
  }

  const api = (path: string, who: keyof typeof token, init: RequestInit = {}) =>
    fetch(`http://${base}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token[who]}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...init.headers,
      },
    })

  /** Response bodies as JSON; their shape is what the assertions check. */
  const json = async (response: Response | Promise<Response>): Promise<any> => (await response).json()

  const connect = (who: keyof typeof token) => WsTestClient.connect(`ws://${base}/ws?token=${token[who]}`)

  async function startGateway(overrides: Partial<Parameters<typeof createGateway>[0]> = {}) {
    const started = await createGateway({
      plant,
      bus,
      tokens,
      logger: pino({ level: 'silent' }),
      isReady: () => true,
      registry: new Registry(),
      eventCapacity: HELD,
      ws: { highWaterBytes: 16 * 1024, liveHighWaterBytes: 8 * 1024, closeTimeoutMs: 500 },
      ackWaitMs: 3000,
      ...overrides,
    })
    await started.start()
    const port = await started.listen({ host: '127.0.0.1', port: 0 })
    return { gateway: started, base: `127.0.0.1:${port}` }
  }

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
    tokens = await TokenStore.open(await mkdtemp(join(tmpdir(), 'plantwatt-channels-')))
    token.admin = (await tokens.issue({ name: 'admin', role: 'admin' })).token
    token.operator = (await tokens.issue({ name: 'shift lead', role: 'operator' })).token
    token.viewer = (await tokens.issue({ name: 'wall screen', role: 'viewer' })).token
    token.line2Viewer = (await tokens.issue({ name: 'line 2', role: 'viewer', scopes: [LINE_2] })).token
    token.line1Operator = (await tokens.issue({ name: 'line 1', role: 'operator', scopes: [LINE_1] })).token
    ;({ gateway, base } = await startGateway())
  })

  afterAll(async () => {
    await gateway.close()
    await processor.stop()
    await bus.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })

  it('starts an alerts subscription without since with the alerts open now, then new events', async () => {
    const [open] = raise(1)
    const client = await connect('viewer')
    // The raise reaches the gateway on the processor's next round; subscribe once it has.
    await expect.poll(async () => (await json(api('/api/v1/alerts?state=open', 'viewer'))).length).toBe(1)
    client.send({ op: 'subscribe', id: 'a', channel: 'alerts', scope: SITE })
    const first = await client.next((f) => f.type === 'alert')
    expect(first).toMatchObject({ sub: 'a', alert: { id: open, state: 'raised', scope: OVEN_1 } })
    const [next] = raise(1)
    const second = await client.next((f) => f.type === 'alert')
    expect(second).toMatchObject({ sub: 'a', seq: (first.seq as number) + 1, alert: { id: next } })
    await client.close()
  })

  it('replays everything after since to a client that reconnects, in order, nothing missed', async () => {
    const client = await connect('viewer')
    client.send({ op: 'subscribe', id: 'r', channel: 'alerts', scope: SITE, since: 0 })
    raise(3)
    const seen: number[] = []
    while (seen.length < 5) seen.push((await client.next((f) => f.type === 'alert')).seq as number)
    await client.close()
    const lastSeen = seen.at(-1)!

    const missed = raise(4)
    await expect.poll(async () => (await json(api('/api/v1/alerts', 'viewer')))[0]?.id).toBe(missed[3])
    const again = await connect('viewer')
    again.send({ op: 'subscribe', id: 'r', channel: 'alerts', scope: SITE, since: lastSeen })
    const replayed: Frame[] = []
    while (replayed.length < 4) replayed.push(await again.next((f) => f.type === 'alert'))
    expect(replayed.map((f) => f.seq)).toEqual([lastSeen + 1, lastSeen + 2, lastSeen + 3, lastSeen + 4])
    expect(replayed.map((f) => (f.alert as { id: string }).id)).toEqual(missed)
    expect(again.frames.some((f) => f.type === 'gap')).toBe(false)
    await again.close()
  })

  it('limits a scoped token to its lines: other lines are refused and their events never shown', async () => {
    const client = await connect('line2Viewer')
    client.send({ op: 'subscribe', id: 's', channel: 'alerts', scope: SITE })
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ id: 's', code: 'forbidden' })
    client.send({ op: 'subscribe', id: 'l2', channel: 'alerts', scope: LINE_2, since: 0 })
    const [onLine2] = raise(1, OVEN_2)
    raise(2, OVEN_1)
    const frame = await client.next((f) => f.type === 'alert' && (f.alert as { id: string }).id === onLine2)
    expect(frame.sub).toBe('l2')
    const list: { scope: string }[] = await json(api('/api/v1/alerts', 'line2Viewer'))
    expect(list.length).toBeGreaterThan(0)
    expect(list.every((alert) => alert.scope.startsWith(LINE_2))).toBe(true)
    expect(
      client.frames.filter((f) => f.type === 'alert').every((f) => (f.alert as { scope: string }).scope === OVEN_2),
    ).toBe(true)
    expect((await api(`/api/v1/alerts?scope=${LINE_1}`, 'line2Viewer')).status).toBe(403)
    await client.close()
  })

  it('lets an operator acknowledge (the acked event comes back from the processor); a viewer gets 403', async () => {
    const [id] = raise(1, OVEN_1)
    const watcher = await connect('viewer')
    watcher.send({ op: 'subscribe', id: 'w', channel: 'alerts', scope: OVEN_1 })
    await watcher.next((f) => f.type === 'alert' && (f.alert as { id: string }).id === id)

    expect((await api(`/api/v1/alerts/${id}/ack`, 'viewer', { method: 'POST' })).status).toBe(403)
    expect((await api(`/api/v1/alerts/${id}/ack`, 'line2Viewer', { method: 'POST' })).status).toBe(403)
    // An operator of another line does not see the alert at all.
    const line2Operator = (await tokens.issue({ name: 'l2 op', role: 'operator', scopes: [LINE_2] })).token
    const foreign = await fetch(`http://${base}/api/v1/alerts/${id}/ack`, {
      method: 'POST',
      headers: { authorization: `Bearer ${line2Operator}` },
    })
    expect(foreign.status).toBe(404)

    const response = await api(`/api/v1/alerts/${id}/ack`, 'line1Operator', { method: 'POST' })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ id, state: 'acked', data: { ackedBy: 'line 1' } })
    const acked = await watcher.next((f) => f.type === 'alert' && (f.alert as { state: string }).state === 'acked')
    expect(acked.alert).toMatchObject({ id, state: 'acked' })
    expect(processor.state.detection.openAlerts(OVEN_1).find((a) => a.id === id)?.state).toBe('acked')

    const twice = await api(`/api/v1/alerts/${id}/ack`, 'operator', { method: 'POST' })
    expect(twice.status).toBe(409)
    expect((await api('/api/v1/alerts/no-such-alert/ack', 'operator', { method: 'POST' })).status).toBe(404)
    await watcher.close()
  })

  it('sends a gap for events already discarded, then the held ones', async () => {
    raise(HELD + 10)
    await expect.poll(() => processor.state.detection.alerts.log.firstHeldSeq).toBeGreaterThan(2)
    const firstHeld = processor.state.detection.alerts.log.firstHeldSeq
    const lastSeq = processor.state.detection.alerts.log.lastSeq
    await expect.poll(async () => (await json(api('/api/v1/alerts?limit=1', 'viewer')))[0]?.seq).toBe(lastSeq)
    const client = await connect('viewer')
    client.send({ op: 'subscribe', id: 'g', channel: 'alerts', scope: SITE, since: 1 })
    const gap = await client.next((f) => f.type === 'gap')
    expect(gap).toEqual({ type: 'gap', sub: 'g', from: 2, to: firstHeld - 1 })
    const replayed: number[] = []
    while (replayed.length < lastSeq - firstHeld + 1)
      replayed.push((await client.next((f) => f.type === 'alert')).seq as number)
    expect(replayed[0]).toBe(firstHeld)
    expect(replayed.at(-1)).toBe(lastSeq)
    await client.close()
  })

  it('gives a gateway started later the same since replay, from the processor (sync on start)', async () => {
    const lastSeq = processor.state.detection.alerts.log.lastSeq
    const late = await startGateway()
    try {
      const client = await WsTestClient.connect(`ws://${late.base}/ws?token=${token.viewer}`)
      // Before the sync answer the replica holds nothing; /api/v1/alerts shows when it has arrived.
      await expect
        .poll(async () => {
          const response = await fetch(`http://${late.base}/api/v1/alerts?limit=1`, {
            headers: { authorization: `Bearer ${token.viewer}` },
          })
          return (await json(response))[0]?.seq
        })
        .toBe(lastSeq)
      client.send({ op: 'subscribe', id: 'x', channel: 'alerts', scope: SITE, since: lastSeq - 3 })
      const seqs: number[] = []
      while (seqs.length < 3) seqs.push((await client.next((f) => f.type === 'alert')).seq as number)
      expect(seqs).toEqual([lastSeq - 2, lastSeq - 1, lastSeq])
      await client.close()
    } finally {
      await late.gateway.close()
    }
  })

  it('closes a client that cannot keep up with alerts with 1013, and it resumes with since', async () => {
    const client = await connect('viewer')
    const since = processor.state.detection.alerts.log.lastSeq
    client.send({ op: 'subscribe', id: 'slow', channel: 'alerts', scope: SITE, since })
    await client.next((f) => f.type === 'subscribed')
    // Stop reading: the kernel buffers fill, then the gateway's, then the ring moves past it.
    const raw = (client.socket as unknown as { _socket: import('node:net').Socket })._socket
    raw.pause()
    const closed = new Promise<number>((resolve) => client.socket.on('close', (code) => resolve(code)))
    const big = 'x'.repeat(20_000)
    for (let round = 0; round < 20; round++) {
      raise(HELD, OVEN_1, big)
      await new Promise((resolve) => setImmediate(resolve))
    }
    raw.resume()
    expect(await closed).toBe(1013)
    const received = client.frames.filter((f) => f.type === 'alert').map((f) => f.seq as number)
    // Everything it did get came in order without holes.
    for (let i = 1; i < received.length; i++) expect(received[i]).toBe(received[i - 1]! + 1)
    const metrics = await (await fetch(`http://${base}/metrics`)).text()
    expect(metrics).toMatch(/plantwatt_ws_closed_lagging_total [1-9]/)

    // Resuming: what it missed comes first, as held events or as a gap where they are gone.
    const resumed = await connect('viewer')
    const after = received.at(-1) ?? since
    resumed.send({ op: 'subscribe', id: 'slow', channel: 'alerts', scope: SITE, since: after })
    const first = await resumed.next((f) => f.type === 'gap' || f.type === 'alert')
    if (first.type === 'gap') expect(first.from).toBe(after + 1)
    else expect(first.seq).toBe(after + 1)
    await resumed.close()
  })

  it('sends buckets of the subscribed scope and step, revisions included', async () => {
    const client = await connect('viewer')
    client.send({ op: 'subscribe', id: 'b', channel: 'buckets', scope: LINE_1, step: '15m' })
    await client.next((f) => f.type === 'subscribed')
    const bucket = (scope: string, step: '1m' | '15m', revision: number) => ({
      scope,
      step,
      t: 1_732_249_800_000,
      energyWh: 1000 + revision,
      co2G: 470,
      co2MarketG: 300,
      idleWh: 0,
      peakW: 5000,
      revision,
    })
    await bus.publish(
      bucketsTopic(SITE),
      encodeMessage({
        site: SITE,
        buckets: [bucket(LINE_1, '1m', 0), bucket(LINE_2, '15m', 0), bucket(LINE_1, '15m', 0)],
      }),
    )
    await bus.publish(bucketsTopic(SITE), encodeMessage({ site: SITE, buckets: [bucket(LINE_1, '15m', 1)] }))
    const first = await client.next((f) => f.type === 'bucket')
    const second = await client.next((f) => f.type === 'bucket')
    expect(first).toEqual({ type: 'bucket', sub: 'b', ...bucket(LINE_1, '15m', 0) })
    expect(second).toMatchObject({ revision: 1, energyWh: 1001 })
    expect(client.frames.filter((f) => f.type === 'bucket')).toHaveLength(2)
    await client.close()
  })

  it('refuses subscribe requests beyond the rate limit with rate_limited, and the connection stays', async () => {
    const client = await connect('viewer')
    for (let i = 0; i < 80; i++) client.send({ op: 'subscribe', id: `s${i}`, channel: 'live', scope: SITE })
    const limited = await client.next((f) => f.type === 'error' && f.code === 'rate_limited')
    expect(limited.id).toMatch(/^s\d+$/)
    expect(client.frames.filter((f) => f.type === 'subscribed').length).toBeLessThan(80)
    expect(client.socket.readyState).toBe(client.socket.OPEN)
    await client.close()
  })

  it('limits HTTP requests per token with 429 in the contract error shape', async () => {
    const limited = await startGateway({ httpRequestsPerMinute: 3 })
    try {
      const get = () =>
        fetch(`http://${limited.base}/api/v1/alerts`, { headers: { authorization: `Bearer ${token.viewer}` } })
      for (let i = 0; i < 3; i++) expect((await get()).status).toBe(200)
      const refused = await get()
      expect(refused.status).toBe(429)
      expect(await refused.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } })
      // Another token has its own allowance; health checks are never limited.
      const other = await fetch(`http://${limited.base}/api/v1/alerts`, {
        headers: { authorization: `Bearer ${token.operator}` },
      })
      expect(other.status).toBe(200)
      for (let i = 0; i < 5; i++) expect((await fetch(`http://${limited.base}/healthz`)).status).toBe(200)
    } finally {
      await limited.gateway.close()
    }
  })

  it('lets an admin issue, list and revoke tokens; others get 403 and a revoked token 401', async () => {
    expect((await api('/api/v1/tokens', 'operator')).status).toBe(403)
    const bad = await api('/api/v1/tokens', 'admin', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', role: 'viewer', scopes: ['yibin/nowhere'] }),
    })
    expect(bad.status).toBe(400)
    const created = await api('/api/v1/tokens', 'admin', {
      method: 'POST',
      body: JSON.stringify({ name: 'mes', role: 'viewer', scopes: [LINE_1] }),
    })
    expect(created.status).toBe(201)
    const issued = await json(created)
    expect(issued).toMatchObject({ name: 'mes', role: 'viewer', scopes: [LINE_1], token: expect.any(String) })
    const listed = await json(api('/api/v1/tokens', 'admin'))
    const entry = listed.tokens.find((t: { id: string }) => t.id === issued.id)
    expect(entry).toBeDefined()
    expect(JSON.stringify(listed)).not.toContain(issued.token)
    expect(JSON.stringify(listed)).not.toMatch(/hash/)

    const asNew = () =>
      fetch(`http://${base}/api/v1/live?scope=${LINE_1}`, { headers: { authorization: `Bearer ${issued.token}` } })
    expect((await asNew()).status).toBe(200)
    expect((await api(`/api/v1/tokens/${issued.id}`, 'admin', { method: 'DELETE' })).status).toBe(204)
    expect((await asNew()).status).toBe(401)
    expect((await api(`/api/v1/tokens/${issued.id}`, 'admin', { method: 'DELETE' })).status).toBe(404)
  })

  it('replaces carbon figures (admin only) and the processor applies them', async () => {
    const carbon = { gridGPerKWh: 321, residualMixGPerKWh: 600, greenShare: 0.5 }
    expect(
      (await api(`/api/v1/sites/${SITE}/carbon`, 'operator', { method: 'PUT', body: JSON.stringify(carbon) })).status,
    ).toBe(403)
    const invalid = await api(`/api/v1/sites/${SITE}/carbon`, 'admin', {
      method: 'PUT',
      body: JSON.stringify({ ...carbon, greenShare: 2 }),
    })
    expect(invalid.status).toBe(400)
    expect(
      (await api('/api/v1/sites/nowhere/carbon', 'admin', { method: 'PUT', body: JSON.stringify(carbon) })).status,
    ).toBe(404)
    const ok = await api(`/api/v1/sites/${SITE}/carbon`, 'admin', { method: 'PUT', body: JSON.stringify(carbon) })
    expect(ok.status).toBe(200)
    await expect.poll(() => processor.figures(plant.scope(SITE)!).gridGPerKWh).toBe(321)
  })

  it('answers energy and device queries from the processor, and refuses what the token may not see', async () => {
    const energy = await api(`/api/v1/energy?scope=${LINE_1}&step=15m`, 'viewer')
    expect(energy.status).toBe(200)
    expect(Array.isArray(await energy.json())).toBe(true)
    expect((await api(`/api/v1/energy?scope=${LINE_1}&step=2m`, 'viewer')).status).toBe(400)
    expect((await api(`/api/v1/energy?scope=${LINE_1}&from=yesterday`, 'viewer')).status).toBe(400)
    expect((await api(`/api/v1/energy?scope=${LINE_1}`, 'line2Viewer')).status).toBe(403)
    const device = await api('/api/v1/devices/860100000000223', 'line2Viewer')
    expect(device.status).toBe(200)
    expect(await device.json()).toMatchObject({ id: '860100000000223', equipment: OVEN_2, accepted: 0, rejected: {} })
    expect((await api('/api/v1/devices/860100000000123', 'line2Viewer')).status).toBe(404)
  })

  it('describes every API route in the OpenAPI document', async () => {
    const doc = await json(fetch(`http://${base}/api/v1/openapi.json`))
    expect(doc.openapi).toMatch(/^3\./)
    const paths = Object.keys(doc.paths)
    for (const path of [
      '/api/v1/plant',
      '/api/v1/live',
      '/api/v1/energy',
      '/api/v1/alerts',
      '/api/v1/alerts/{id}/ack',
      '/api/v1/setpoints',
      '/api/v1/setpoints/{eventId}/approve',
      '/api/v1/setpoints/{eventId}/reject',
      '/api/v1/tuning',
      '/api/v1/sites/{site}/carbon',
      '/api/v1/devices/{id}',
      '/api/v1/tokens',
      '/api/v1/tokens/{id}',
    ]) {
      expect(paths).toContain(path)
    }
    expect(paths).not.toContain('/')
  })
})
