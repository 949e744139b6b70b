import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BuildResult, buildCli } from '../src/build.ts'

// Issue 16: a broker worker of `plantwatt up --workers N` should hold only what a broker needs, since
// every worker pays for what it loads (PSS per process). The built worker (`pnpm build`'s
// worker-main.js) is one bundle whose imports are static, so what esbuild put into it and what it
// imports from node_modules is what the worker process loads.

/** The package an import path into node_modules names (`…/node_modules/@scope/name/…` → `@scope/name`). */
function packageOf(path: string): string {
  const match = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)
  return match ? match[1]! : path
}

describe('pnpm build', () => {
  let outDir: string
  let built: BuildResult

  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'plantwatt-build-'))
    built = await buildCli(outDir)
  })

  afterAll(async () => {
    if (outDir) await rm(outDir, { recursive: true, force: true })
  })

  function output(name: string) {
    const entry = Object.entries(built.metafile.outputs).find(([path]) => path.endsWith(`/${name}`))
    if (!entry) throw new Error(`no ${name} in the build`)
    return entry[1]
  }

  it("keeps the broker worker's bundle to the broker: no gateway, processor, history store, simulator or Redis", () => {
    const worker = output('worker-main.js')
    const sources = Object.keys(worker.inputs)
    const packages = new Set(worker.imports.filter((each) => each.external).map((each) => packageOf(each.path)))

    // What a worker does need is there (the check is not vacuous).
    expect(sources.some((path) => path.includes('services/broker/src/broker.ts'))).toBe(true)
    expect(sources.some((path) => path.includes('packages/runtime/src/ingest-journal.ts'))).toBe(true)
    for (const needed of ['aedes', 'classic-level', 'pino', 'prom-client']) expect(packages).toContain(needed)

    const notNeeded = sources.filter(
      (path) =>
        /services\/(gateway|processor)\/src\//.test(path.replace(/services\/processor\/src\/uplink-decode.*/, '')) ||
        /packages\/(history-store|history|accounting|detection|tuning)\/src\//.test(path) ||
        /simulators\//.test(path) ||
        /packages\/bus\/src\/mqtt-bus\.ts/.test(path) ||
        /packages\/contract\/src\/asyncapi\.ts/.test(path),
    )
    expect(notNeeded).toEqual([])
    // fastify and ws (the gateway), lmdb (the history store), the MQTT client (split roles' bus),
    // Redis (the clustered broker role), typebox (schemas the primary validates), the CLI parser.
    for (const unneeded of [
      'fastify',
      'ws',
      'lmdb',
      'mqtt',
      'ioredis',
      'mqemitter-redis',
      '@sinclair/typebox',
      'commander',
    ])
      expect(packages).not.toContain(unneeded)
  })

  it("builds the command's entry point, which holds the processor and gateway", () => {
    const main = output('main.js')
    const packages = new Set(main.imports.filter((each) => each.external).map((each) => packageOf(each.path)))
    expect(packages).toContain('fastify')
    expect(packages).toContain('commander')
  })
})
