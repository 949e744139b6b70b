import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

export const REPO_ROOT = resolve(import.meta.dirname, '../..')
export const CLI_ENTRY = join(REPO_ROOT, 'services/cli/src/main.ts')

/**
 * `node --import tsx services/cli/src/main.ts …`: the same code path as `pnpm plantwatt …`; with
 * `builtEntry`, the compiled CLI run by plain node (`pnpm build`'s main.js, as `pnpm start` runs it).
 */
export function cliArgs(args: string[], builtEntry?: string): string[] {
  return builtEntry ? [builtEntry, ...args] : ['--import', 'tsx', CLI_ENTRY, ...args]
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a short plantwatt command to completion. */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const child = spawn(process.execPath, cliArgs(args), { cwd: REPO_ROOT, env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/**
 * Runs a plantwatt command that should refuse to start; should it start after all (its
 * `readyMessage` record appears), it is stopped at once and `started` says so.
 */
export async function runCliExpectingRefusal(
  args: string[],
  env: Record<string, string | undefined> = {},
  readyMessage = 'listening',
): Promise<CliResult & { started: boolean }> {
  const child = spawn(process.execPath, cliArgs(args), { cwd: REPO_ROOT, env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  let started = false
  createInterface({ input: child.stdout }).on('line', (line) => {
    stdout += `${line}\n`
    if (!line.includes(readyMessage)) return
    try {
      if (JSON.parse(line).msg !== readyMessage) return
    } catch {
      return
    }
    started = true
    child.kill('SIGTERM')
  })
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  // 'close', not 'exit': every line of stdout and stderr has been read by then.
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr, started }
}

/** When a stop that has not finished is reported, well inside the hooks' 60 s timeout. */
const STOP_REPORT_MS = 30_000

export interface RunningPlantwatt {
  child: ChildProcess
  mqttPort: number
  httpPort: number
  dataDir: string
  /** Every NDJSON log record seen so far. */
  logs: Record<string, unknown>[]
  /**
   * The first log record with this `msg` (seen already or still to come); rejects after
   * `timeoutMs` or when the process exits first.
   */
  waitForLog(msg: string, timeoutMs: number): Promise<Record<string, unknown>>
  /**
   * Waits until `done(logs)` holds over the records seen so far; for records of several processes
   * (a worker's own lines reach the shared stdout in no set order with the primary's).
   */
  waitForLogs(done: (logs: Record<string, unknown>[]) => boolean, timeoutMs: number): Promise<void>
  stop(): Promise<number | null>
}

/**
 * Starts `plantwatt up` on free ports (port 0) with its own data directory, and resolves once
 * its `listening` record (CONTRACT.md §8) names the bound ports.
 */
export function startPlantwatt(
  args: string[],
  env: Record<string, string | undefined> = {},
  builtEntry?: string,
): Promise<RunningPlantwatt> {
  return startRole(
    ['up', '--host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', ...args],
    env,
    'listening',
    builtEntry,
  )
}

/**
 * Starts any plantwatt command that serves (up, broker, processor, gateway) with its own data
 * directory (unless `--data-dir` is given), resolving at its start-up record: `listening`, or
 * `readyMessage` for a role that binds nothing.
 */
export async function startRole(
  args: string[],
  env: Record<string, string | undefined> = {},
  readyMessage = 'listening',
  builtEntry?: string,
): Promise<RunningPlantwatt> {
  const dataDir = args.includes('--data-dir')
    ? args[args.indexOf('--data-dir') + 1]!
    : await mkdtemp(join(tmpdir(), 'plantwatt-e2e-'))
  const child = spawn(
    process.execPath,
    cliArgs(args.includes('--data-dir') ? args : [...args, '--data-dir', dataDir], builtEntry),
    { cwd: REPO_ROOT, env: { ...process.env, PLANTWATT_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const logs: Record<string, unknown>[] = []
  const logWaiters = new Set<(record: Record<string, unknown>) => void>()
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr += chunk
  })
  const listening = new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let record: Record<string, unknown>
      try {
        record = JSON.parse(line)
      } catch {
        return
      }
      logs.push(record)
      for (const waiter of logWaiters) waiter(record)
      if (record.msg === readyMessage) resolvePromise(record)
    })
    child.once('exit', (code) =>
      reject(new Error(`plantwatt ${args[0]} exited with ${code} before starting:\n${stderr}`)),
    )
  })
  const record = await listening
  const waitUntil = (done: (entries: Record<string, unknown>[]) => boolean, what: string, timeoutMs: number) => {
    if (done(logs)) return Promise.resolve()
    return new Promise<void>((resolveWait, rejectWait) => {
      const finish = () => {
        clearTimeout(timer)
        logWaiters.delete(waiter)
        child.off('exit', onExit)
      }
      const waiter = () => {
        if (!done(logs)) return
        finish()
        resolveWait()
      }
      const onExit = (code: number | null) => {
        finish()
        rejectWait(new Error(`plantwatt ${args[0]} exited with ${code} before ${what}:\n${stderr}`))
      }
      const timer = setTimeout(() => {
        finish()
        rejectWait(new Error(`no ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      logWaiters.add(waiter)
      child.once('exit', onExit)
    })
  }
  return {
    child,
    mqttPort: (record.mqttPort as number | undefined) ?? 0,
    httpPort: (record.httpPort as number | undefined) ?? 0,
    dataDir,
    logs,
    async waitForLog(msg, timeoutMs) {
      await waitUntil((entries) => entries.some((entry) => entry.msg === msg), `a "${msg}" log record`, timeoutMs)
      return logs.find((entry) => entry.msg === msg)!
    },
    waitForLogs(done, timeoutMs) {
      return waitUntil(done, 'the log records waited for', timeoutMs)
    },
    async stop() {
      // Already gone (a test may kill -9 it): 'exit' has fired and will not again.
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      // A stop that hangs fails the test's hook by its timeout; this says where it hung.
      const slow = setTimeout(() => {
        const last = logs.slice(-15).map((record) => JSON.stringify(record).slice(0, 300))
        process.stderr.write(
          `plantwatt ${args[0]} has not stopped ${STOP_REPORT_MS} ms after SIGTERM; its last log records:\n${last.join('\n')}\n${stderr.slice(-2000)}\n`,
        )
      }, STOP_REPORT_MS)
      const [code] = (await once(child, 'exit')) as [number | null]
      clearTimeout(slow)
      return code
    },
  }
}
