import type { Worker } from 'node:cluster'
import type { FromWorker } from './protocol.ts'

/**
 * How long a worker's IPC channel may stay open after its process exited. Its messages are read
 * long before that on a healthy primary; past it, they are not coming.
 */
export const CHANNEL_GRACE_MS = 2000

/**
 * Resolves once `worker` has exited and every message it sent has been read: its IPC channel has
 * closed ('disconnect'), or its last message of a clean stop ('stopped') has arrived, which the
 * channel delivers after everything sent before it.
 *
 * Node does not promise the order of 'exit' and 'disconnect', and under load it sometimes never
 * emits 'disconnect' for a worker that exits right after sending (seen with `up --demo` on a busy
 * machine: 'exit' came, 'disconnect' never did, and the shutdown waited forever). So after 'exit'
 * the channel gets `graceMs` more and then counts as closed; `onLateChannel` says so. Nothing
 * acknowledged is lost that way: a record the worker had not forwarded is still in its journal,
 * replayed from the processor's position at the next start.
 */
export function whenWorkerGone(
  worker: Worker,
  onLateChannel: () => void,
  graceMs: number = CHANNEL_GRACE_MS,
): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
  const channelDone = new Promise<void>((resolve) => {
    if (!worker.isConnected()) return resolve()
    worker.once('disconnect', () => resolve())
    const onMessage = (message: FromWorker) => {
      if (message.t !== 'stopped') return
      worker.off('message', onMessage)
      resolve()
    }
    worker.on('message', onMessage)
    void exited.then(() => {
      const timer = setTimeout(() => {
        onLateChannel()
        resolve()
      }, graceMs)
      timer.unref()
      void channelDone.then(() => clearTimeout(timer))
    })
  })
  return Promise.all([exited, channelDone]).then(() => undefined)
}
