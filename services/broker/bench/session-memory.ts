// Where a plantwatt broker spends its memory per idle device session (issue 16):
//
//   node --expose-gc --import tsx services/broker/bench/session-memory.ts --devices 5000 [--snapshots DIR]
//
// The broker runs in this process; the sessions come from the fleet simulator's session engine in
// worker processes (so none of the client side is in this heap). With every device connected and
// idle, it reports V8 heap and RSS growth per session and, from two heap snapshots (before any
// session, all connected), the objects that grew, by constructor, bytes per session. Nothing
// publishes: this is what holding a session costs.

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { writeHeapSnapshot } from 'node:v8'
import { PlantIndex } from '@plantwatt/plant'
import pino from 'pino'
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { fleetDevicesOf, runFleetProcesses } from '../../../simulators/fleet/src/sessions/index.ts'
import { createBroker } from '../src/broker.ts'

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '5000' },
    snapshots: { type: 'string' },
    top: { type: 'string', default: '25' },
  },
})
const devices = Number(values.devices)
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) {
  console.error('run with node --expose-gc')
  process.exit(2)
}
const collect = () => {
  for (let k = 0; k < 3; k++) gc()
}

const secret = randomBytes(24).toString('hex')
const model = generatePlant({ devices, seed: 1 })
const broker = await createBroker({
  plant: new PlantIndex(model),
  deviceSecret: secret,
  logger: pino({ level: 'error' }),
  limits: { connectRatePerS: 1_000_000, connectBurst: 1_000_000, maxConnections: 100_000 },
})
const port = await broker.listen({ host: '127.0.0.1', port: 0 })

type Census = Map<string, { count: number; bytes: number }>
/** Self sizes summed by node type and name (constructor for objects) from a heap snapshot file. */
function census(file: string): Census {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
    nodes: number[]
    strings: string[]
  }
  const fields = snapshot.snapshot.meta.node_fields
  const stride = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const types = snapshot.snapshot.meta.node_types[0]
  const result: Census = new Map()
  for (let i = 0; i < snapshot.nodes.length; i += stride) {
    const type = types[snapshot.nodes[i + typeAt]!]!
    const name = type === 'object' || type === 'closure' ? snapshot.strings[snapshot.nodes[i + nameAt]!]! : ''
    const key = `${type}${name ? ` ${name}` : ''}`
    const entry = result.get(key) ?? { count: 0, bytes: 0 }
    entry.count++
    entry.bytes += snapshot.nodes[i + sizeAt]!
    result.set(key, entry)
  }
  return result
}

const dir = values.snapshots ?? '/tmp'
const stamp = `${process.pid}-${Date.now()}`
collect()
const before = { ...process.memoryUsage() }
const beforeFile = values.snapshots ? writeHeapSnapshot(join(dir, `sessions-before-${stamp}.heapsnapshot`)) : ''

const fleet = await runFleetProcesses({
  devices: fleetDevicesOf(model),
  brokers: [{ host: '127.0.0.1', port }],
  deviceSecret: secret,
  workers: 1,
  localAddresses: ['127.0.0.2'],
  publishing: false,
  intervalMs: 1000,
  qos: 1,
  keepaliveS: 120,
  connectRatePerS: 5000,
  maxConnectsInFlight: 200,
  connectTimeoutMs: 30_000,
  backoff: { initialMs: 1000, maxMs: 10_000 },
  maxLifetimeMs: 600_000,
})
const connected = await fleet.waitFor((stats) => stats.allConnectedAt > 0, 120_000)
// Settled: every session's CONNACK written and its socket idle.
await new Promise((resolve) => setTimeout(resolve, 3000))
collect()
const after = { ...process.memoryUsage() }
const n = broker.connectedCount()
const kb = (bytes: number) => Math.round((bytes / n / 1024) * 100) / 100
console.log(
  JSON.stringify({
    devices,
    connected: n,
    allConnected: connected,
    node: process.version,
    heapUsedKBPerSession: kb(after.heapUsed - before.heapUsed),
    externalKBPerSession: kb(after.external + after.arrayBuffers - before.external - before.arrayBuffers),
    rssKBPerSession: kb(after.rss - before.rss),
    rssBeforeMB: Math.round(before.rss / 2 ** 20),
    heapBeforeMB: Math.round(before.heapUsed / 2 ** 20),
  }),
)
if (values.snapshots) {
  const afterFile = writeHeapSnapshot(join(dir, `sessions-after-${stamp}.heapsnapshot`))
  const a = census(beforeFile)
  const b = census(afterFile)
  const rows = [...b.entries()]
    .map(([key, entry]) => {
      const old = a.get(key) ?? { count: 0, bytes: 0 }
      return { key, perSession: (entry.count - old.count) / n, bytesPerSession: (entry.bytes - old.bytes) / n }
    })
    .sort((x, y) => y.bytesPerSession - x.bytesPerSession)
    .slice(0, Number(values.top))
  for (const row of rows) {
    console.log(
      `${row.bytesPerSession.toFixed(0).padStart(7)} B  ${row.perSession.toFixed(2).padStart(6)} ×  ${row.key}`,
    )
  }
}
await fleet.stop({ drainMs: 0, closeMs: 5000 })
await broker.close()
process.exit(0)
