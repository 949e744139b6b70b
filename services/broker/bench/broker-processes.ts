import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'

// Starts plantwatt broker processes (broker-process.ts) and learns their ports from the one
// line each prints. Each is its own process: its memory and CPU are read from /proc, apart
// from the load generator's, and one process may hold at most 20,000 descriptors here.

export interface BrokerProcesses {
  addresses: { host: string; port: number }[]
  pids: number[]
  /**
   * SIGTERM (the broker closes its clients and backends), SIGKILL after 10 s. Resolves with what
   * went wrong: processes that exited on their own before, or did not exit with code 0.
   */
  stop(): Promise<string[]>
}

const ENTRY = fileURLToPath(new URL('./broker-process.ts', import.meta.url))
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const LOOP_DELAY_PRELOAD = fileURLToPath(
  new URL('../../../packages/runtime/bench/loop-delay-preload.ts', import.meta.url),
)
const START_TIMEOUT_MS = 60_000

interface StartOptions {
  devices: number
  seed: number
  secret: string
  redisUrl?: string
  /** Node options for the broker processes (--cpu-prof, …). */
  nodeArgs?: string[]
  /** Journal every uplink before its PUBACK, as `plantwatt up` does. */
  journal?: boolean
}

function startOne(options: StartOptions) {
  const args = [
    ...(options.nodeArgs ?? []),
    '--import',
    TSX_LOADER,
    // Answers the bench's event-loop delay marks when PLANTWATT_LOOP_DELAY_DIR is set.
    '--import',
    LOOP_DELAY_PRELOAD,
    ENTRY,
    '--devices',
    String(options.devices),
    '--seed',
    String(options.seed),
  ]
  if (options.redisUrl) args.push('--redis', options.redisUrl)
  if (options.journal) args.push('--journal')
  // The secret goes in the environment, not on a command line that `ps` shows.
  const child = spawn(process.execPath, args, {
    env: { ...process.env, PLANTWATT_DEVICE_SECRET: options.secret },
    // stdin stays open: the broker stops by itself when it closes, i.e. when this process dies.
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const port = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('broker process did not report its port in time')),
      START_TIMEOUT_MS,
    )
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer)
      try {
        resolve((JSON.parse(line) as { port: number }).port)
      } catch {
        reject(new Error(`broker process printed ${line}`))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`broker process exited with code ${code} before listening`))
    })
  })
  return { child, port }
}

async function stopOne(child: ChildProcess): Promise<string | undefined> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return `broker process ${child.pid} had exited before the stop (${child.signalCode ?? `code ${child.exitCode}`})`
  }
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const lingering = setTimeout(() => child.kill('SIGKILL'), 10_000)
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null]
  clearTimeout(lingering)
  return code === 0 ? undefined : `broker process ${child.pid} ended with ${signal ?? `code ${code}`} when stopped`
}

export async function startBrokerProcesses(options: StartOptions & { count: number }): Promise<BrokerProcesses> {
  const started = Array.from({ length: options.count }, () => startOne(options))
  const children = started.map((one) => one.child)
  const killOnExit = () => {
    for (const child of children) child.kill('SIGKILL')
  }
  process.once('exit', killOnExit)
  const stop = async () => {
    const problems = await Promise.all(children.map(stopOne))
    process.off('exit', killOnExit)
    return problems.filter((problem) => problem !== undefined)
  }
  try {
    const ports = await Promise.all(started.map((one) => one.port))
    return {
      addresses: ports.map((port) => ({ host: '127.0.0.1', port })),
      pids: children.map((child) => child.pid!),
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}
