import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deriveDevicePassword } from '@plantwatt/contract'
import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplePlant } from '../support/example-plant.ts'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'
import { WsTestClient } from '../support/ws-client.ts'

// Issue 12 finding 12, end to end: `plantwatt up` with its data directory on a small tmpfs that the
// test fills. While the disk is full: a clear error is logged, uplinks are refused (no PUBACK) with
// a counted reason, live figures are still served over HTTP and WebSocket. Once space is freed the
// device's retransmissions go in, and after a crash (SIGKILL, no checkpoint) every reading that
// was PUBACKed is counted. Stale temporaries of writeFileAtomic are removed at start.
// Mounting needs root (CI has it): without it the test fails with a clear message, it never skips.

const SECRET = 'full-disk-device-secret-0123456789abcdef'
const ADMIN = 'full-disk-admin-token-0123456789'
const OVEN = '860100000000123'
const READINGS = 20
const PAD = ' '.repeat(8192)

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Fills the file system holding `path` until a write fails with ENOSPC. */
async function fill(path: string): Promise<void> {
  for (const size of [256 * 1024, 4096, 512, 1]) {
    const chunk = Buffer.alloc(size, 7)
    for (;;) {
      try {
        await appendFile(path, chunk)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break
        throw error
      }
    }
  }
}

describe('plantwatt up on a full disk (issue 12 finding 12)', () => {
  let dataDir: string
  let plantFile: string
  let system: RunningPlantwatt
  const env = { PLANTWATT_DEVICE_SECRET: SECRET, PLANTWATT_ADMIN_TOKEN: ADMIN }

  const api = (path: string) =>
    fetch(`http://127.0.0.1:${system.httpPort}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const accepted = async () => ((await (await api(`/api/v1/devices/${OVEN}`)).json()) as { accepted: number }).accepted
  const journalRefusals = async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
    const match = /plantwatt_broker_messages_refused_total\{reason="journal_failed"\} (\d+)/.exec(metrics)
    return match ? Number(match[1]) : 0
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'plantwatt-full-disk-'))
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dataDir], { stdio: 'pipe' })
    } catch (error) {
      throw new Error(
        `this test mounts a small tmpfs as the data directory and needs root: ${(error as Error).message}`,
      )
    }
    plantFile = join(tmpdir(), `plantwatt-full-disk-plant-${process.pid}.json`)
    await writeFile(plantFile, JSON.stringify(examplePlant()))
    // A temporary that an earlier run's failed checkpoint left behind.
    await mkdir(join(dataDir, 'processor'), { recursive: true })
    await writeFile(join(dataDir, 'processor', 'checkpoint.v8.0badc0de.tmp'), Buffer.alloc(64 * 1024))
    system = await startPlantwatt(['--plant', plantFile, '--data-dir', dataDir], env)
  })

  afterAll(async () => {
    await system?.stop()
    try {
      execFileSync('umount', [dataDir])
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('removes stale temporaries at start', async () => {
    expect(await readdir(join(dataDir, 'processor'))).not.toContain('checkpoint.v8.0badc0de.tmp')
  })

  it('refuses uplinks with a counted reason while full, keeps serving live figures, and loses nothing acknowledged', async () => {
    const device: MqttClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
      clientId: OVEN,
      username: OVEN,
      password: deriveDevicePassword(SECRET, OVEN),
      protocolVersion: 4,
      clean: false,
      // The device sends unacknowledged readings again when it reconnects (MQTT 3.1.1 §4.4).
      reconnectPeriod: 200,
    })
    device.on('error', () => {})
    const t0 = Math.floor(Date.now() / 1000) - 100
    const topic = `sites/yibin/devices/${OVEN}/up`
    await device.publishAsync(topic, JSON.stringify([{ n: 'power', u: 'W', v: 1000, t: t0 }]), { qos: 1 })
    expect(await until(accepted, (n) => n === 1)).toBe(1)

    const filler = join(dataDir, 'filler')
    await fill(filler)
    // Each reading is published once by the test; the client repeats it until it is PUBACKed.
    const acknowledged = Array.from({ length: READINGS }, (_, k) =>
      // Padded (JSON allows trailing blanks) so the readings cannot all fit in a page the journal
      // file already has.
      device.publishAsync(topic, JSON.stringify([{ n: 'power', u: 'W', v: 2000 + k, t: t0 + 1 + k }]) + PAD, {
        qos: 1,
      }),
    )
    expect(await until(journalRefusals, (n) => n > 0)).toBeGreaterThan(0)
    const refusal = system.logs.find((record) => record.msg === 'uplink not journaled: refused')
    expect(refusal).toBeDefined()
    expect(JSON.stringify(refusal)).toMatch(/ENOSPC|no space left/)

    // Live figures are still served while the disk is full.
    expect((await fetch(`http://127.0.0.1:${system.httpPort}/healthz`)).status).toBe(200)
    const live = await api('/api/v1/live?scope=yibin')
    expect(live.status).toBe(200)
    expect(((await live.json()) as { at: number | null }).at).not.toBeNull()
    const ws = await WsTestClient.connect(`ws://127.0.0.1:${system.httpPort}/ws?token=${ADMIN}`)
    ws.send({ op: 'subscribe', id: 'a', channel: 'live', scope: 'yibin' })
    const snapshot = await ws.next((frame) => frame.type === 'live' && frame.sub === 'a')
    expect(snapshot.at).not.toBeNull()
    await ws.close()

    // Space again: every retransmission goes in and is acknowledged.
    await rm(filler)
    await Promise.all(acknowledged)
    expect(await until(accepted, (n) => n === 1 + READINGS)).toBe(1 + READINGS)
    await device.endAsync()

    // A crash (no checkpoint at stop): the journal still has every acknowledged reading.
    system.child.kill('SIGKILL')
    await once(system.child, 'exit')
    system = await startPlantwatt(['--plant', plantFile, '--data-dir', dataDir], env)
    expect(await until(accepted, (n) => n === 1 + READINGS)).toBe(1 + READINGS)
  })

  it('logs and counts a damaged journal record at the next start, and replays the records after it', async () => {
    // Another crash, then one record's bytes damaged on disk (no checkpoint was written: the
    // restart replays the whole journal).
    system.child.kill('SIGKILL')
    await once(system.child, 'exit')
    // The journal of the broker worker that took the device's readings (`up --workers N` keeps one
    // per worker slot: ingest-journal, ingest-journal.worker-1, …): the largest first segment.
    let path = ''
    let bytes = Buffer.alloc(0)
    for (const name of (await readdir(dataDir)).filter((entry) => entry.startsWith('ingest-journal'))) {
      const [segment] = (await readdir(join(dataDir, name))).sort()
      if (segment === undefined) continue
      const content = await readFile(join(dataDir, name, segment))
      if (content.length > bytes.length) {
        path = join(dataDir, name, segment)
        bytes = content
      }
    }
    const second = 8 + bytes.readUInt32LE(0) // the second record: its length prefix, then its crc
    bytes.writeUInt8(bytes.readUInt8(second + 40) ^ 0xff, second + 40)
    await writeFile(path, bytes)

    system = await startPlantwatt(['--plant', plantFile, '--data-dir', dataDir], env)
    expect(await until(accepted, (n) => n === READINGS)).toBe(READINGS)
    const metrics = await (await fetch(`http://127.0.0.1:${system.httpPort}/metrics`)).text()
    expect(metrics).toMatch(/plantwatt_journal_records_skipped_total 1\b/)
    const logged = system.logs.find((record) =>
      String(record.msg).startsWith('ingest journal: damaged records skipped'),
    )
    expect(logged).toMatchObject({ afterSeq: 1, nextSeq: 3, lostRecords: 1 })
  })
})
