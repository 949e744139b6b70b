// One plantwatt broker process for the session benchmark (sessions.ts starts it):
//
//   PLANTWATT_DEVICE_SECRET=… node --import tsx services/broker/bench/broker-process.ts \
//     --devices 19000 [--seed 1] [--redis redis://127.0.0.1:6379] [--max-lifetime-s 3600] [--journal]
//
// --journal appends every device uplink to an ingest journal (fdatasync before the PUBACK) in a
// temporary directory, removed at the end: the broker's half of `plantwatt up`'s path.
//
// Builds createBroker with the plant of generatePlant({ devices }) and limits opened up for a
// benchmark, listens on 127.0.0.1 port 0 and prints one JSON line {"port":…,"pid":…} on stdout.
// It stops when stdin closes (its parent went away), on SIGTERM/SIGINT, or after
// --max-lifetime-s, so a benchmark that dies never leaves it behind.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { PlantIndex } from '@plantwatt/plant'
import { IngestJournal } from '@plantwatt/runtime'
import pino from 'pino'
// The plant generator lives in the fleet simulator; a service may not depend on a simulator,
// so this tool (not the product) reaches it by path.
import { generatePlant } from '../../../simulators/fleet/src/plant-generator.ts'
import { createRedisBackends, type RedisBackends } from '../src/backends.ts'
import { createBroker } from '../src/broker.ts'

const { values } = parseArgs({
  options: {
    devices: { type: 'string' },
    seed: { type: 'string', default: '1' },
    redis: { type: 'string' },
    'max-lifetime-s': { type: 'string', default: '3600' },
    journal: { type: 'boolean', default: false },
  },
})

const devices = Number(values.devices)
const secret = process.env.PLANTWATT_DEVICE_SECRET
if (!Number.isInteger(devices) || devices < 1 || !secret) {
  console.error('usage: PLANTWATT_DEVICE_SECRET=… broker-process.ts --devices N [--seed S] [--redis URL]')
  process.exit(2)
}

// Errors only, on stderr: a warning per refused connect would measure the logger, not the broker.
const logger = pino({ level: 'error' }, pino.destination(2))
let backends: RedisBackends | undefined
if (values.redis) {
  backends = await createRedisBackends({
    redisUrl: values.redis,
    onError: (error) => logger.error({ err: error.message }, 'redis'),
  })
}
const journalDir = values.journal ? mkdtempSync(join(tmpdir(), 'plantwatt-bench-journal-')) : undefined
const journal = journalDir ? await IngestJournal.open(journalDir) : undefined
const broker = await createBroker({
  plant: new PlantIndex(generatePlant({ devices, seed: Number(values.seed) })),
  deviceSecret: secret,
  logger,
  mq: backends?.mq,
  persistence: backends?.persistence,
  uplinkJournal: journal,
  limits: {
    // A benchmark connects the whole fleet as fast as it can: the overall connect rate limit
    // (a protection for production) would otherwise be what is measured.
    connectRatePerS: 1_000_000,
    connectBurst: 1_000_000,
    maxConnections: 100_000,
  },
})
const port = await broker.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`${JSON.stringify({ port, pid: process.pid })}\n`)

let closing = false
const shutdown = async (code: number) => {
  if (closing) return
  closing = true
  // Bounded: a broker that does not close in 10 s is left to the exit.
  setTimeout(() => process.exit(code), 10_000).unref()
  await broker.close().catch(() => {})
  await backends?.close().catch(() => {})
  await journal?.close().catch(() => {})
  if (journalDir) rmSync(journalDir, { recursive: true, force: true })
  process.exit(code)
}
process.on('SIGTERM', () => void shutdown(0))
process.on('SIGINT', () => void shutdown(0))
process.stdin.on('end', () => void shutdown(0))
process.stdin.resume()
setTimeout(() => void shutdown(3), Number(values['max-lifetime-s']) * 1000).unref()
