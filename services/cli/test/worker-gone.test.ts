import type { Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { whenWorkerGone } from '../src/cluster/worker-gone.ts'

// A stand-in for a cluster Worker: the events Node emits for it, in the orders that happen, some
// of which (a channel that never reports closing) cannot be produced at will with real processes.
class WorkerEvents extends EventEmitter {
  connected = true
  isConnected() {
    return this.connected
  }
  exit() {
    this.emit('exit', 0, null)
  }
  disconnect() {
    this.connected = false
    this.emit('disconnect')
  }
}

function watch(worker: WorkerEvents, graceMs = 60_000) {
  let settled = false
  let late = 0
  const gone = whenWorkerGone(
    worker as unknown as Worker,
    () => {
      late++
    },
    graceMs,
  ).then(() => {
    settled = true
  })
  return { gone, isSettled: () => settled, lateCount: () => late }
}

/** Lets every pending promise callback run. */
const drain = () => new Promise((resolve) => setImmediate(resolve))

describe('whenWorkerGone', () => {
  it('waits for both the exit and the channel closing, in either order', async () => {
    const exitFirst = new WorkerEvents()
    const a = watch(exitFirst)
    exitFirst.exit()
    await drain()
    expect(a.isSettled()).toBe(false)
    exitFirst.disconnect()
    await a.gone
    expect(a.lateCount()).toBe(0)

    const disconnectFirst = new WorkerEvents()
    const b = watch(disconnectFirst)
    disconnectFirst.disconnect()
    await drain()
    expect(b.isSettled()).toBe(false)
    disconnectFirst.exit()
    await b.gone
  })

  it("takes the worker's last message of a clean stop as its channel done", async () => {
    const worker = new WorkerEvents()
    const watched = watch(worker)
    worker.emit('message', { t: 'records', bytes: new Uint8Array(0) })
    worker.exit()
    await drain()
    expect(watched.isSettled()).toBe(false)
    worker.emit('message', { t: 'stopped' })
    await watched.gone
    expect(watched.lateCount()).toBe(0)
  })

  it('gives up on a channel that never reports closing after the exit, and says so', async () => {
    const worker = new WorkerEvents()
    const watched = watch(worker, 20)
    worker.exit()
    await watched.gone
    expect(watched.lateCount()).toBe(1)
  })

  it('does not start the grace period before the process has exited', async () => {
    const worker = new WorkerEvents()
    const watched = watch(worker, 1)
    // Longer than the grace: still running, so still waiting.
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(watched.isSettled()).toBe(false)
    worker.disconnect()
    worker.exit()
    await watched.gone
    expect(watched.lateCount()).toBe(0)
  })
})
