// A real `plantwatt up` child process for the ceiling ladder (bench:up-load starts its own, with
// the loop-delay preload and a live client; the ladder needs only the MQTT port, the process tree
// for CPU and memory, and a clean stop). Same environment as a user's: device secret and admin
// token from the environment, a fresh data directory, free ports.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { buildCli } from '../src/build.ts'

const ROOT = resolve(import.meta.dirname, '../../..')
const CLI_ENTRY = join(ROOT, 'services/cli/src/main.ts')

export interface UpChild {
  child: ChildProcess
  pid: number
  mqttPort: number
  httpPort: number
  /** Broker workers of `up` (1: the single process). */
  brokerWorkers: number
  /** warn/error log lines by message, counted. */
  logCounts: Record<string, number>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>
}

export async function startUpChild(options: {
  plantFile: string
  dataDir: string
  deviceSecret: string
  adminToken: string
  /** PLANTWATT_WORKERS; unset: up's own default. */
  workers?: string
  /** Run from the TypeScript sources under tsx; default: built beside the data directory, as `pnpm start` runs it. */
  fromSources?: boolean
}): Promise<UpChild> {
  let entry = ['--import', 'tsx', CLI_ENTRY]
  if (!options.fromSources) {
    const outDir = join(dirname(options.dataDir), 'cli')
    await buildCli(outDir)
    entry = [join(outDir, 'main.js')]
  }
  const child = spawn(
    process.execPath,
    [
      ...entry,
      'up',
      '--plant',
      options.plantFile,
      '--data-dir',
      options.dataDir,
      '--host',
      '127.0.0.1',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        PLANTWATT_DEVICE_SECRET: options.deviceSecret,
        PLANTWATT_ADMIN_TOKEN: options.adminToken,
        PLANTWATT_LOG_LEVEL: 'info',
        ...(options.workers === undefined ? {} : { PLANTWATT_WORKERS: options.workers }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const logCounts: Record<string, number> = {}
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8000)
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const record = await new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let parsed: Record<string, unknown>
      try {
        parsed = JSON.parse(line)
      } catch {
        return
      }
      // pino levels: 40 warn, 50 error, 60 fatal.
      const level = Number(parsed.level)
      if (level >= 40) {
        const key = `${level >= 50 ? 'error' : 'warn'}: ${String(parsed.msg)}`
        logCounts[key] = (logCounts[key] ?? 0) + 1
      }
      if (parsed.msg === 'listening') resolvePromise(parsed)
    })
    void exited.then((code) => reject(new Error(`plantwatt up exited with ${code} before listening:\n${stderr}`)))
  })
  return {
    child,
    pid: child.pid!,
    mqttPort: record.mqttPort as number,
    httpPort: record.httpPort as number,
    brokerWorkers: (record.workers as number | undefined) ?? 1,
    logCounts,
    async stop(graceMs = 120_000) {
      process.off('exit', killOnExit)
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
        const code = await exited
        clearTimeout(timer)
        return code
      }
      return child.exitCode
    },
  }
}

/** `pid` and its children (up's broker workers): CPU and memory are summed over all of them. */
export function processTree(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()
    return [pid, ...(children === '' ? [] : children.split(/\s+/).map(Number))]
  } catch {
    return [pid]
  }
}
