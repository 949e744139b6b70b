import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { type AddressInfo, connect, createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { mosquittoAclLines, mosquittoPasswordLines } from '../src/mosquitto-files.ts'

// Debian's Mosquitto holding the same fleet as the plantwatt broker: every device its own user
// with the same derived password (hashed by mosquitto_passwd), plantwatt's processor and gateway
// with their own, and the ACL plantwatt generates (src/mosquitto-files.ts): a device confined to
// its own topics, each role to its side of the internal bus.

export interface RunningMosquitto {
  port: number
  pid: number
  /** Resolves with what went wrong (Mosquitto gone before the stop, or a bad exit). */
  stop(): Promise<string[]>
}

const MISSING = 'mosquitto is not installed: run `bash test/install-deps.sh` (or `apt-get install mosquitto`)'

export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

async function accepting(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with code ${child.exitCode}`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`mosquitto did not accept connections on port ${port} within ${timeoutMs} ms`)
}

export async function startMosquitto(options: {
  devices: readonly { id: string }[]
  deviceSecret: string
  /** PLANTWATT_INTERNAL_SECRET; unset, the internal key is derived from the device secret. */
  internalSecret?: string
}): Promise<RunningMosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'plantwatt-mosquitto-'))
  await chmod(dir, 0o700)
  const passwordFile = join(dir, 'passwd')
  const lines = mosquittoPasswordLines(options.devices, options.deviceSecret, options.internalSecret)
  await writeFile(passwordFile, `${lines.join('\n')}\n`, { mode: 0o600 })
  try {
    // -U hashes a file of plain `user:password` lines in place.
    await promisify(execFile)('mosquitto_passwd', ['-U', passwordFile])
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(MISSING)
    throw error
  }
  await writeFile(join(dir, 'acl'), `${mosquittoAclLines().join('\n')}\n`)
  const port = await freePort()
  const config = [
    'per_listener_settings false',
    'allow_anonymous false',
    `password_file ${passwordFile}`,
    `acl_file ${join(dir, 'acl')}`,
    `listener ${port} 127.0.0.1`,
    'max_connections -1',
    'persistence false',
    // Mosquitto started as root drops to the user `mosquitto`, which could not read the
    // password file in this private directory: run as whoever runs the benchmark.
    `user ${userInfo().username}`,
    'log_dest stderr',
    'log_type error',
  ]
  await writeFile(join(dir, 'mosquitto.conf'), `${config.join('\n')}\n`)
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'inherit'] })
  const spawned = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined))
    child.once('error', resolve)
  })
  if (spawned) {
    await rm(dir, { recursive: true, force: true })
    throw spawned.code === 'ENOENT' ? new Error(MISSING) : spawned
  }
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  let stopped: Promise<string[]> | undefined
  const stop = () => {
    stopped ??= (async () => {
      process.off('exit', killOnExit)
      const problems: string[] = []
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit')
        child.kill('SIGTERM')
        const lingering = setTimeout(() => child.kill('SIGKILL'), 5000)
        const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null]
        clearTimeout(lingering)
        if (code !== 0) problems.push(`mosquitto ended with ${signal ?? `code ${code}`} when stopped`)
      } else {
        problems.push(`mosquitto had exited before the stop (${child.signalCode ?? `code ${child.exitCode}`})`)
      }
      await rm(dir, { recursive: true, force: true })
      return problems
    })()
    return stopped
  }
  try {
    await accepting(port, 10_000, child)
  } catch (error) {
    await stop()
    throw error
  }
  return { port, pid: child.pid!, stop }
}
