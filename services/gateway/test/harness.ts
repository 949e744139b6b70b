import { mkdtemp } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import { PlantIndex } from '@plantwatt/plant'
import { TokenStore } from '@plantwatt/runtime'
import { Aedes } from 'aedes'
import pino from 'pino'
import { Registry } from 'prom-client'
import { examplePlant } from '../../../test/support/example-plant.ts'
import { createGateway, type Gateway, type GatewayOptions } from '../src/gateway.ts'
import { startProcessorStandIn } from './processor-stand-in.ts'

// One gateway on a real socket (port 0) over a real in-process aedes bus, with a real token store
// in a fresh data directory: what the security tests of issue 12 need.

export const plant = new PlantIndex(examplePlant())

export interface Harness {
  gateway: Gateway
  tokens: TokenStore
  dataDir: string
  /** host:port */
  base: string
  close(): Promise<void>
}

export async function startHarness(overrides: Partial<GatewayOptions> = {}): Promise<Harness> {
  const broker = await Aedes.createBroker()
  const bus: Bus = createAedesBus(broker)
  const dataDir = await mkdtemp(join(tmpdir(), 'plantwatt-gw-sec-'))
  const tokens = await TokenStore.open(dataDir)
  const processor = await startProcessorStandIn(bus, plant)
  const gateway = await createGateway({
    plant,
    bus,
    tokens,
    logger: pino({ level: 'silent' }),
    isReady: () => true,
    registry: new Registry(),
    ...overrides,
  })
  await gateway.start()
  const port = await gateway.listen({ host: '127.0.0.1', port: 0 })
  return {
    gateway,
    tokens,
    dataDir,
    base: `127.0.0.1:${port}`,
    async close() {
      await gateway.close()
      await processor.close()
      await bus.close()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
    },
  }
}

export interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/**
 * One HTTP request from a chosen local address (127.0.0.x: the whole block is loopback on Linux),
 * so a test can be two clients at two addresses. A fresh connection each time (no keep-alive).
 */
export function httpFrom(
  localAddress: string,
  base: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawAnswer> {
  const [host, port] = base.split(':')
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path,
        method: init.method ?? 'GET',
        headers: init.headers,
        localAddress,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        )
        response.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(init.body)
  })
}

/** A metric's value from /metrics (the first series with that name), NaN when absent. */
export async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${base}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line === undefined ? Number.NaN : Number(line.split(' ').at(-1))
}
