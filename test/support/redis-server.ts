import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

export interface RunningRedis {
  /** `redis://127.0.0.1:PORT`. */
  url: string
  port: number
  /** Stops the server (SIGTERM, SIGKILL if it lingers) and removes its directory. */
  stop(): Promise<void>
}

const MISSING =
  "redis-server is not installed: the aedes cluster tests need Debian's redis-server (run `bash test/install-deps.sh`, or `apt-get install redis-server`)"

/** A port that was free a moment ago: redis-server cannot bind port 0, so the caller retries on a race. */
async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** One PING on a raw socket, answered `+PONG`: the server is serving. */
async function ping(port: number): Promise<void> {
  const socket = connect(port, '127.0.0.1')
  try {
    await once(socket, 'connect')
    socket.write('PING\r\n')
    const [reply] = (await once(socket, 'data')) as [Buffer]
    if (!reply.toString().startsWith('+PONG')) throw new Error(`redis-server answered PING with ${reply}`)
  } finally {
    socket.destroy()
  }
}

type Outcome = { ready: true } | { ready: false; reason: string; bindRace: boolean }

/** Resolves when the server logs that it accepts connections, or exits first. */
function readiness(child: ChildProcess): Promise<Outcome> {
  return new Promise((resolve) => {
    const log: string[] = []
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.push(line)
      if (/Ready to accept connections/.test(line)) resolve({ ready: true })
    })
    child.stderr!.on('data', (chunk) => log.push(String(chunk)))
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ ready: false, bindRace: false, reason: error.code === 'ENOENT' ? MISSING : error.message }),
    )
    child.once('exit', (code, signal) => {
      const text = log.join('\n')
      resolve({
        ready: false,
        bindRace: /address already in use/i.test(text),
        reason: `redis-server exited (${signal ?? code}) before it was ready:\n${text}`,
      })
    })
  })
}

/**
 * Starts Debian's redis-server on a free loopback port, without persistence (`--save ''
 * --appendonly no`) in its own temporary directory, and resolves once it answers PING. Fails
 * (never skips) when redis-server is missing.
 */
export async function startRedis(): Promise<RunningRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'plantwatt-redis-'))
  let lastReason = ''
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--daemonize',
        'no',
        '--loglevel',
        'notice',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const outcome = await readiness(child)
    if (!outcome.ready) {
      lastReason = outcome.reason
      if (outcome.bindRace) continue
      await rm(dir, { recursive: true, force: true })
      throw new Error(lastReason)
    }
    // Should the test process die without stop(), do not leave the server behind.
    const killOnExit = () => child.kill('SIGKILL')
    process.once('exit', killOnExit)
    try {
      await ping(port)
    } catch (error) {
      child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
      throw error
    }
    let stopped: Promise<void> | undefined
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      stop() {
        stopped ??= (async () => {
          process.off('exit', killOnExit)
          if (child.exitCode === null && child.signalCode === null) {
            const exited = once(child, 'exit')
            child.kill('SIGTERM')
            const lingering = setTimeout(() => child.kill('SIGKILL'), 5000)
            await exited
            clearTimeout(lingering)
          }
          await rm(dir, { recursive: true, force: true })
        })()
        return stopped
      },
    }
  }
  await rm(dir, { recursive: true, force: true })
  throw new Error(`redis-server found no free port after 5 attempts: ${lastReason}`)
}
