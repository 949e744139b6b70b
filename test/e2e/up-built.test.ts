import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BuildResult, buildCli } from '@plantwatt/cli/build'
import { deriveDevicePassword, deviceTopic } from '@plantwatt/contract'
import { generatePlant } from '@plantwatt/fleet'
import { PlantIndex } from '@plantwatt/plant'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningPlantwatt, startPlantwatt } from '../support/plantwatt-process.ts'

// Issue 16: `pnpm build` compiles the plantwatt command to plain JavaScript, and `pnpm start` runs it
// with `node` alone: no tsx loader thread, esbuild service or source maps in any of up's processes
// (about 60 MB of PSS each). This builds into a temporary directory and runs the built `up` with two
// broker workers as a user would, then checks that it is the same system: a device's reading goes
// through a worker to the processor, and the gateway finds its dashboard files.

const SECRET = 'e2e-built-secret-0123456789abcdef0123'
const ADMIN = 'e2e-built-admin-0123456789abc'
const model = generatePlant({ devices: 20, seed: 7 })
const plant = new PlantIndex(model)
const device = [...plant.devices.values()].find((each) => each.equipment !== undefined)!

/** The command lines of a process and its children (the broker workers). */
function processTree(pid: number): string[] {
  const cmdline = (each: number) => readFileSync(`/proc/${each}/cmdline`, 'utf8').split('\0').join(' ')
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()
  return [pid, ...(children === '' ? [] : children.split(/\s+/).map(Number))].map(cmdline)
}

async function until(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('the built plantwatt (pnpm build, then plain node)', () => {
  let outDir: string
  let built: BuildResult
  let system: RunningPlantwatt

  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'plantwatt-built-'))
    built = await buildCli(outDir)
    const plantFile = join(outDir, 'plant.json')
    await writeFile(plantFile, JSON.stringify(model))
    system = await startPlantwatt(
      ['--plant', plantFile, '--workers', '2'],
      { PLANTWATT_DEVICE_SECRET: SECRET, PLANTWATT_ADMIN_TOKEN: ADMIN },
      join(outDir, 'main.js'),
    )
  }, 120_000)

  afterAll(async () => {
    expect(await system?.stop()).toBe(0)
    if (outDir) await rm(outDir, { recursive: true, force: true })
  }, 60_000)

  it('runs the primary and both workers under plain node, from the built files', async () => {
    await until(async () => system.logs.filter((record) => record.msg === 'worker listening').length === 2)
    const tree = processTree(system.child.pid!)
    expect(tree[0]).toContain(join(outDir, 'main.js'))
    expect(tree.filter((line) => line.includes(join(outDir, 'worker-main.js')))).toHaveLength(2)
    // No tsx loader and no esbuild service child in any of them.
    for (const line of tree) expect(line).not.toMatch(/tsx|esbuild/)
    expect(Object.keys(built.metafile.outputs).map((path) => path.replace(/.*\//, ''))).toEqual(
      expect.arrayContaining(['main.js', 'worker-main.js']),
    )
  })

  it("acknowledges a device's QoS 1 reading through a worker and the processor accepts it", async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${system.mqttPort}`, {
      clientId: device.deviceId,
      username: device.deviceId,
      password: deriveDevicePassword(SECRET, device.deviceId),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    const t = Math.floor(Date.now() / 1000) - 60
    await client.publishAsync(
      deviceTopic(device.siteId, device.deviceId, 'up'),
      JSON.stringify([{ n: 'power', u: 'W', v: 100, t }]),
      { qos: 1 },
    )
    await client.endAsync()
    await until(async () => {
      const response = await fetch(`http://127.0.0.1:${system.httpPort}/api/v1/devices/${device.deviceId}`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
      return ((await response.json()) as { accepted: number }).accepted === 1
    })
  })

  it('serves the dashboard, whose files the gateway finds beside its sources', async () => {
    const response = await fetch(`http://127.0.0.1:${system.httpPort}/`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/text\/html/)
    expect(await response.text()).toMatch(/<html/i)
  })
})
