import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'

// Request and answer between the benchmark and its child processes over Node's IPC channel. Each
// child is its own process so that its CPU and memory are its own, and so the server's event loop
// never runs a client's code. A child exits when the channel closes (its parent went away), so a
// benchmark that dies leaves nothing behind.

interface Request {
  id: number
  cmd: string
  body: unknown
}

type Answer = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string }

const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

/** A child process that answers requests (see `serveRequests`). */
export class BenchChild {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  private readonly exited: Promise<unknown>

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (message: Answer) => {
      const waiting = this.pending.get(message.id)
      if (!waiting) return
      this.pending.delete(message.id)
      if (message.ok) waiting.resolve(message.result)
      else waiting.reject(new Error(`${name}: ${message.error}`))
    })
    this.exited = once(child, 'exit')
    child.once('exit', (code, signal) => {
      for (const waiting of this.pending.values()) {
        waiting.reject(new Error(`${name} exited (${signal ?? `code ${code}`}) before answering`))
      }
      this.pending.clear()
    })
  }

  /** Starts `entry` (a .ts file next to this one) under tsx, with extra Node flags. */
  static start(name: string, entry: string, nodeFlags: string[] = []): BenchChild {
    const path = fileURLToPath(new URL(entry, import.meta.url))
    const child = fork(path, [], {
      execArgv: ['--import', TSX_LOADER, ...nodeFlags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    return new BenchChild(name, child)
  }

  get pid(): number {
    return this.child.pid!
  }

  ask<T>(cmd: string, body: unknown = {}): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      const request: Request = { id, cmd, body }
      this.child.send(request)
    })
  }

  /** Closes the channel (the child exits on its own) and kills it if it lingers. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const lingering = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    if (this.child.connected) this.child.disconnect()
    await this.exited
    clearTimeout(lingering)
  }
}

/** In a child: answers requests with `handlers[cmd](body)`; exits when the parent goes away. */
export function serveRequests(
  // `never`: each handler takes its own request body, which only its caller knows the shape of.
  handlers: Record<string, (body: never) => unknown>,
  onDisconnect: () => void,
): void {
  if (!process.send) throw new Error('run this file through the benchmark (it needs an IPC channel)')
  process.on('message', async (request: Request) => {
    let answer: Answer
    try {
      const handler = handlers[request.cmd]
      if (!handler) throw new Error(`unknown command ${request.cmd}`)
      answer = { id: request.id, ok: true, result: await handler(request.body as never) }
    } catch (error) {
      answer = {
        id: request.id,
        ok: false,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }
    }
    process.send!(answer)
  })
  process.on('disconnect', onDisconnect)
}
