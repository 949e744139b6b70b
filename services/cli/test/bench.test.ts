import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

// `pnpm bench --quick` end to end: real `plantwatt up` children (bench:up-load, and the ladder's
// own), the fleet simulator's sessions in generator processes, Debian's Mosquitto relaying to a
// real subscriber. Timing figures depend on the machine and are not asserted; that every figure
// is a number taken from this run (the up-load JSON files it names, the packs the generator
// counted) and the shape of the JSON and of the Markdown summary are.

const ROOT = resolve(import.meta.dirname, '../../..')
const BENCH = join(ROOT, 'services/cli/bench/all.ts')
const START = '<!-- bench:summary:start -->'
const END = '<!-- bench:summary:end -->'
const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

describe('pnpm bench --quick', () => {
  it('runs plantwatt up under load and the ceiling ladder against plantwatt and Mosquitto, writes the JSON and the summary between the markers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-bench-'))
    dirs.push(dir)
    const out = join(dir, 'result.json')
    const docs = join(dir, 'benchmarks.md')
    await copyFile(join(ROOT, 'docs/benchmarks.md'), docs)
    const original = await readFile(docs, 'utf8')
    expect(original).toContain(START)

    const child = spawn(process.execPath, ['--import', 'tsx', BENCH, '--quick', '--out', out, '--docs', docs], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (chunk) => {
      output += chunk
    })
    child.stderr!.on('data', (chunk) => {
      output += chunk
    })
    const [code] = (await once(child, 'exit')) as [number | null]
    expect(code, output).toBe(0)

    const result = JSON.parse(await readFile(out, 'utf8'))
    expect(result.quick).toBe(true)
    expect(result.commit).toBe(execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim())
    expect(result.machine).toMatchObject({
      cpus: expect.any(Number),
      model: expect.any(String),
      memoryGiB: expect.any(Number),
      kernel: expect.any(String),
      node: process.version,
    })
    expect(result.machine.loadAverageAtStart).toHaveLength(3)
    expect(result.problems).toEqual([])

    // 1. plantwatt up under load: both shapes, every figure from the up-load JSON it names.
    expect(result.up.map((run: { intervalS: number }) => run.intervalS)).toEqual([10, 1])
    for (const run of result.up) {
      const full = JSON.parse(await readFile(resolve(ROOT, run.file), 'utf8'))
      expect(run.devices).toBe(200)
      expect(run.exitCode).toBe(0)
      expect(run.ok).toBe(true)
      expect(run.packsSent).toBeGreaterThan(0)
      expect(run.packsAcked).toBe(full.generator.packsAcked)
      expect(run.packsAcked).toBe(run.packsSent)
      expect(run.puback).toEqual(full.generator.puback)
      expect(run.cpuMicrosPerPackTaken).toBe(full.up.cpuMicrosPerPackTaken)
      expect(run.cpuMicrosPerPackTaken).toBeGreaterThan(0)
      expect(run.pssPerDeviceKB).toBeGreaterThan(0)
      for (const share of ['machine', 'generator', 'other']) {
        expect(run[`${share}CpuPercentUnderLoad`]).toEqual(expect.any(Number))
      }
    }

    // 2. the ladder: the same sessions and steps on both targets, from the generator's counts.
    const ladder = result.ladder
    expect(ladder).toMatchObject({ sessions: 200, rates: [100, 200], stepS: 10 })
    expect(ladder.targets.map((t: { target: string }) => t.target)).toEqual(['plantwatt', 'mosquitto'])
    for (const target of ladder.targets) {
      expect(target).toMatchObject({ sessions: 200, connected: 200 })
      expect(target.steps.length).toBeGreaterThanOrEqual(1)
      for (const step of target.steps) {
        expect(step.ackedPerS).toBeGreaterThan(0)
        // A window's PUBACKs, counted by the generator: about acked/s × seconds of the step.
        expect(step.puback.count).toBeGreaterThan(0)
        expect(step.targetCpuMicrosPerPack).toEqual(expect.any(Number))
        expect(step.behind).toBe(step.why.length > 0)
      }
      const kept = target.steps.filter((step: { behind: boolean }) => !step.behind)
      expect(target.ceilingPerS).toBe(kept.at(-1)?.offeredPerS ?? 0)
    }
    const [plantwatt, mosquitto] = ladder.targets
    expect(mosquitto.config).toContain('persistence false')
    expect(mosquitto.config).toContain('allow_anonymous true')
    // Each passed the packs on: Mosquitto to its one subscriber, up's broker to its processor.
    expect(mosquitto.steps[0].deliveredPerS).toBeGreaterThan(0)
    expect(plantwatt.steps[0].deliveredPerS).toBeGreaterThan(0)
    if (mosquitto.ceilingPerS > 0) {
      expect(ladder.ceilingRatio).toBeCloseTo(plantwatt.ceilingPerS / mosquitto.ceilingPerS, 2)
    }

    // 3. the other benchmarks quoted from their latest results in the repository.
    for (const quoted of [result.gateway, result.replay]) {
      expect(quoted.ranNow).toBe(false)
      expect(existsSync(resolve(ROOT, quoted.file))).toBe(true)
    }

    // The Markdown: only the part between the markers changed, and it holds this run's figures.
    const written = await readFile(docs, 'utf8')
    expect(written.slice(0, written.indexOf(START))).toBe(original.slice(0, original.indexOf(START)))
    expect(written.slice(written.indexOf(END))).toBe(original.slice(original.indexOf(END)))
    const summary = written.slice(written.indexOf(START), written.indexOf(END))
    expect(summary).toContain(result.commit.slice(0, 7))
    expect(summary).toContain(`ceiling **${ladder.ceilingRatio ?? '—'}**`)
    expect(summary).toContain('fsyncs its ingest journal before each PUBACK')
    expect(summary).toContain(result.up[1].file)
  }, 600_000)
})
