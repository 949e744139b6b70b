// The entry point of a broker worker of `plantwatt up --workers N` (cluster.setupPrimary's `exec`):
// it loads only what a broker needs (no processor, gateway, history store or simulator), so that N
// workers start fast and hold little memory, and takes its options from the primary over IPC
// (the plant model included: the primary has already validated it).

import { createLogger } from '@plantwatt/runtime'
import type { UpOptions } from '../up.ts'
import type { FromWorker, ToWorker } from './protocol.ts'
import { upWorker } from './worker.ts'

process.umask(0o077)
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`plantwatt worker: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}\n`)
})
const slot = Number(process.env.PLANTWATT_WORKER_SLOT)
process.once('message', (message: ToWorker) => {
  if (message.t !== 'init') return
  upWorker(message.options, createLogger(), slot, message.workers).catch((error: unknown) => {
    process.stderr.write(`plantwatt worker ${slot}: ${(error as Error)?.stack ?? String(error)}\n`)
    process.exit(1)
  })
})
process.send!({ t: 'boot' } satisfies FromWorker)

// Type-only use keeps UpOptions the one description of the options.
export type { UpOptions }
