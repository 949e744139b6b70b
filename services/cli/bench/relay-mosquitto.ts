// Debian's Mosquitto as the bare relay the ceiling ladder compares `plantwatt up` with (issue 16):
// started on a free port with a generated config, anonymous (the bench's devices still send their
// user name and password, which an anonymous listener without a password file ignores), no
// persistence — it keeps nothing, where `plantwatt up` fsyncs its journal before each PUBACK — and
// one QoS 1 subscriber to every device's `up` topic, so that each pack is relayed once, as the
// processor takes each one from `up`'s journal.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { freePort } from '../../broker/bench/mosquitto.ts'

export const MOSQUITTO = '/usr/sbin/mosquitto'
/** Every device's uplink (CONTRACT.md §4 topics: sites/<site>/devices/<device>/up). */
export const UPLINK_FILTER = 'sites/+/devices/+/up'

export interface RelayMosquitto {
  port: number
  pid: number
  /** Packs the subscriber has received so far. */
  relayed(): number
  /** Stops the subscriber and Mosquitto; resolves with what went wrong, if anything. */
  stop(): Promise<string[]>
}

/** The generated configuration (exported for the bench's JSON, so a reader sees what ran). */
export function relayConfig(port: number): string[] {
  return [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_connections -1',
    // The one subscriber takes every device's packs: let many be in flight to it, and queue
    // rather than drop when it lags (the default queue of 1,000 would drop QoS 1 packs silently).
    'max_inflight_messages 1000',
    'max_queued_messages 1000000',
    'log_dest stderr',
    'log_type error',
  ]
}

async function accepting(port: number, child: ChildProcess, timeoutMs: number): Promise<mqtt.MqttClient> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with code ${child.exitCode}`)
    try {
      return await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: 'plantwatt-bench-relay',
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      })
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

export async function startRelayMosquitto(): Promise<RelayMosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'plantwatt-bench-mosquitto-'))
  const port = await freePort()
  await writeFile(join(dir, 'mosquitto.conf'), `${relayConfig(port).join('\n')}\n`)
  const child = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'inherit'] })
  const spawnError = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined))
    child.once('error', resolve)
  })
  if (spawnError) {
    await rm(dir, { recursive: true, force: true })
    throw spawnError.code === 'ENOENT'
      ? new Error(`${MOSQUITTO} is not installed: run \`bash test/install-deps.sh\` (or apt-get install mosquitto)`)
      : spawnError
  }
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  let subscriber: mqtt.MqttClient
  try {
    subscriber = await accepting(port, child, 10_000)
    await subscriber.subscribeAsync(UPLINK_FILTER, { qos: 1 })
  } catch (error) {
    child.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  let relayed = 0
  subscriber.on('message', () => {
    relayed++
  })
  let stopped: Promise<string[]> | undefined
  return {
    port,
    pid: child.pid!,
    relayed: () => relayed,
    stop() {
      stopped ??= (async () => {
        const problems: string[] = []
        await subscriber.endAsync(true).catch((error: Error) => problems.push(`subscriber: ${error.message}`))
        process.off('exit', killOnExit)
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          const lingering = setTimeout(() => child.kill('SIGKILL'), 5000)
          const [code, signal] = await exited
          clearTimeout(lingering)
          if (code !== 0) problems.push(`mosquitto ended with ${signal ?? `code ${code}`} when stopped`)
        } else {
          problems.push(`mosquitto had exited before the stop (${child.signalCode ?? `code ${child.exitCode}`})`)
        }
        await rm(dir, { recursive: true, force: true })
        return problems
      })()
      return stopped
    },
  }
}
