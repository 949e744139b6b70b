import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

// DESIGN.md "Layout": dependencies point one way, services → adapters → domain → contract, and
// services never import each other. Each workspace package states its layer in package.json
// ("plantwatt": {"layer"}); this test checks both the declared dependencies and the imports.
// Runtime dependencies obey the rule strictly. devDependencies serve only tests and benchmarks,
// which may judge a domain package against the simulator's ground truth (its recorded truth is the
// referee of accounting and detection) — but never reach a service, and `src` may import only
// runtime dependencies.

const ROOT = join(import.meta.dirname, '../..')
const RANK: Record<string, number> = {
  contract: 0,
  domain: 1,
  adapter: 2,
  service: 3,
  simulator: 3,
  launcher: 4,
  tests: 5,
}

interface Workspace {
  name: string
  dir: string
  layer: string
  /** Runtime dependencies (`dependencies`), the ones `src` may import. */
  dependencies: string[]
  /** Test and benchmark dependencies (`devDependencies`). */
  devDependencies: string[]
}

function workspaces(): Workspace[] {
  const found: Workspace[] = []
  for (const group of ['packages', 'services', 'simulators', '.']) {
    const dirs = group === '.' ? ['test'] : readdirSync(join(ROOT, group)).map((name) => join(group, name))
    for (const dir of dirs) {
      const manifest = join(ROOT, dir, 'package.json')
      try {
        statSync(manifest)
      } catch {
        continue
      }
      const pkg = JSON.parse(readFileSync(manifest, 'utf8'))
      found.push({
        name: pkg.name,
        dir,
        layer: pkg.plantwatt?.layer,
        dependencies: plantwattOnly(pkg.dependencies),
        devDependencies: plantwattOnly(pkg.devDependencies),
      })
    }
  }
  return found
}

function plantwattOnly(deps: Record<string, string> | undefined): string[] {
  return Object.keys(deps ?? {}).filter((dep) => dep.startsWith('@plantwatt/'))
}

function sourceFiles(dir: string): string[] {
  const files: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...sourceFiles(path))
    else if (entry.name.endsWith('.ts')) files.push(path)
  }
  return files
}

const all = workspaces()
const byName = new Map(all.map((workspace) => [workspace.name, workspace]))

describe('dependency direction', () => {
  it('finds every workspace with a known layer', () => {
    expect(all.length).toBeGreaterThanOrEqual(9)
    for (const workspace of all) expect(RANK[workspace.layer], `${workspace.name} layer`).toBeDefined()
  })

  it.each(all.map((workspace) => [workspace.name, workspace] as const))(
    '%s depends only downwards',
    (_name, workspace) => {
      for (const dependency of workspace.dependencies) {
        const target = byName.get(dependency)
        expect(target, `${workspace.name} → unknown ${dependency}`).toBeDefined()
        const from = RANK[workspace.layer]!
        const to = RANK[target!.layer]!
        const sideways = from === to && (workspace.layer === 'service' || workspace.layer === 'simulator')
        expect(
          to <= from && !sideways,
          `${workspace.name} (${workspace.layer}) → ${dependency} (${target!.layer})`,
        ).toBe(true)
        if (workspace.layer !== 'launcher' && workspace.layer !== 'tests') {
          // Only the launcher composes services; nothing else may reach up to one.
          expect(
            ['service', 'simulator'].includes(target!.layer) && from <= to,
            `${workspace.name} → ${dependency}`,
          ).toBe(false)
        }
      }
    },
  )

  it.each(all.map((workspace) => [workspace.name, workspace] as const))(
    '%s uses in tests and benchmarks only workspaces below it or the simulator, never a service',
    (_name, workspace) => {
      for (const dependency of workspace.devDependencies) {
        const target = byName.get(dependency)
        expect(target, `${workspace.name} → unknown ${dependency}`).toBeDefined()
        const downwards = RANK[target!.layer]! <= RANK[workspace.layer]!
        const groundTruth = target!.layer === 'simulator' && workspace.layer !== 'simulator'
        const service = target!.layer === 'service' && !['launcher', 'tests'].includes(workspace.layer)
        expect(
          (downwards || groundTruth) && !service,
          `${workspace.name} (${workspace.layer}) devDependency → ${dependency} (${target!.layer})`,
        ).toBe(true)
      }
    },
  )

  it.each(all.map((workspace) => [workspace.name, workspace] as const))(
    '%s imports only the workspaces it declares, and never another package by path',
    (_name, workspace) => {
      const src = join(ROOT, workspace.dir, workspace.dir === 'test' ? '.' : 'src')
      // The tests workspace is all tests: its devDependencies are what its files may import.
      const importable =
        workspace.dir === 'test' ? [...workspace.dependencies, ...workspace.devDependencies] : workspace.dependencies
      for (const file of sourceFiles(src)) {
        const text = readFileSync(file, 'utf8')
        for (const match of text.matchAll(/from '(@plantwatt\/[a-z0-9-]+)/g)) {
          expect(importable, `${relative(ROOT, file)} imports ${match[1]}`).toContain(match[1])
        }
        for (const match of text.matchAll(/from '((?:\.\.\/)+(?:packages|services|simulators)\/[^']+)'/g)) {
          expect.fail(`${relative(ROOT, file)} reaches into another package by path: ${match[1]}`)
        }
      }
    },
  )
})
