import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus, createMqttBus } from '@plantwatt/bus'
import { createGateway, type Gateway } from '@plantwatt/gateway'
import { HistoryStore, type StoredBucket } from '@plantwatt/history-store'
import { PlantIndex } from '@plantwatt/plant'
import { Processor } from '@plantwatt/processor'
import { TokenStore } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'

// GET /api/v1/energy over HTTP from the embedded history store (CONTRACT.md §6), in both layouts:
// gateway and processor on the in-process bus (`plantwatt up`), and each on its own MQTT
// connection to a broker on a real socket (split mode). The store holds months the processor's
// 25-hour ring never saw; a range of more than 100,000 buckets answers 400 naming a coarser step.

const plant = new PlantIndex(examplePlant())
const LINE = 'yibin/electrode/coating-1'
const DAY_MS = 86_400_000
// 00:00 in Yibin (UTC+8), 80 days before the last bucket.
const FROM_MS = Date.UTC(2025, 0, 5, 16, 0)
/** One more than §6's most buckets per answer. */
const MINUTES = 100_001

function bucket(step: StoredBucket['step'], t: number, energyWh: number): StoredBucket {
  return {
    scope: LINE,
    step,
    t,
    revision: 0,
    energyWh,
    co2G: energyWh / 2,
    co2MarketG: energyWh / 3,
    idleWh: 0,
    peakW: 1,
  }
}

for (const layout of ['in-process', 'split'] as const) {
  describe(`GET /api/v1/energy from the history store (${layout})`, () => {
    let dir: string
    let store: HistoryStore
    let aedes: Aedes
    let server: Server | undefined
    const buses: Bus[] = []
    let processor: Processor
    let gateway: Gateway
    let base: string
    let token: string

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'plantwatt-energy-history-'))
      // 1-minute buckets kept 100 days (an option, §6), so that one range can exceed 100,000.
      store = new HistoryStore({ path: join(dir, 'history'), maxAgeS: 7 * 86_400, retention: { '1m': 100 * 86_400 } })
      const minutes: StoredBucket[] = []
      for (let i = 0; i < MINUTES; i++) minutes.push(bucket('1m', FROM_MS + i * 60_000, 10))
      await store.write(minutes)
      const days: StoredBucket[] = []
      for (let d = 0; d < 40; d++) days.push(bucket('1d', FROM_MS + d * DAY_MS, 1000 + d))
      await store.write(days)

      aedes = await Aedes.createBroker()
      let processorBus: Bus
      let gatewayBus: Bus
      if (layout === 'in-process') {
        processorBus = createAedesBus(aedes)
        gatewayBus = processorBus
      } else {
        server = createServer((socket) => aedes.handle(socket))
        await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
        const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
        processorBus = await createMqttBus({ url, clientId: `energy-processor-${process.pid}`, clean: true })
        gatewayBus = await createMqttBus({ url, clientId: `energy-gateway-${process.pid}`, clean: true })
      }
      buses.push(processorBus, gatewayBus)
      processor = new Processor({
        plant,
        bus: processorBus,
        logger: pino({ level: 'silent' }),
        historyStore: store,
        publishIntervalMs: 20,
      })
      await processor.start()
      const tokens = await TokenStore.open(dir)
      token = (await tokens.issue({ name: 'wall screen', role: 'viewer' })).token
      gateway = await createGateway({
        plant,
        bus: gatewayBus,
        tokens,
        logger: pino({ level: 'silent' }),
        registry: new Registry(),
        isReady: () => true,
      })
      await gateway.start()
      base = `127.0.0.1:${await gateway.listen({ host: '127.0.0.1', port: 0 })}`
    })

    afterAll(async () => {
      await gateway?.close()
      await processor?.stop()
      await store?.close()
      for (const bus of new Set(buses)) await bus.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()))
      await rm(dir, { recursive: true, force: true })
    })

    const get = (query: string) =>
      fetch(`http://${base}/api/v1/energy?scope=${LINE}&${query}`, { headers: { authorization: `Bearer ${token}` } })

    it('answers past days at step 1d, which the processor no longer holds', async () => {
      const response = await get('step=1d')
      expect(response.status).toBe(200)
      const rows = (await response.json()) as { t: number; energyWh: number }[]
      expect(rows).toHaveLength(40)
      expect(rows[0]).toEqual({ t: FROM_MS, energyWh: 1000, co2G: 500, co2MarketG: 1000 / 3, idleWh: 0, peakW: 1 })
      expect(rows.at(-1)!.t).toBe(FROM_MS + 39 * DAY_MS)
      const some = await get(`step=1d&from=${FROM_MS + 10 * DAY_MS}&to=${FROM_MS + 12 * DAY_MS}`)
      expect(((await some.json()) as { energyWh: number }[]).map((row) => row.energyWh)).toEqual([1010, 1011])
    })

    it('answers 400 naming a coarser step past 100,000 buckets, and 100,000 exactly', async () => {
      const tooMany = await get(`step=1m&from=${FROM_MS}&to=${FROM_MS + MINUTES * 60_000}`)
      expect(tooMany.status).toBe(400)
      const body = (await tooMany.json()) as { error: { message: string } }
      expect(body.error.message).toContain('step=15m')
      const exactly = await get(`step=1m&from=${FROM_MS}&to=${FROM_MS + 100_000 * 60_000}`)
      expect(exactly.status).toBe(200)
      const rows = (await exactly.json()) as { t: number }[]
      expect(rows).toHaveLength(100_000)
      expect(rows.at(-1)!.t).toBe(FROM_MS + 99_999 * 60_000)
    }, 30_000)
  })
}
