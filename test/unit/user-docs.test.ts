import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

// The README and the pages for device makers and integrators are read by people who have only the
// clone: they must name nothing outside it, and the names they give (files, metrics, commands)
// must exist in it.

const ROOT = join(import.meta.dirname, '../..')
const PAGES = ['README.md', 'docs/devices.md', 'docs/integrators.md']
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8')

/** Every source file of the workspace (not node_modules), for "is this name defined somewhere". */
function sources(dir = ROOT, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) sources(path, out)
    else if (/\.(ts|js)$/.test(name) && !/\.test\.ts$/.test(name)) out.push(readFileSync(path, 'utf8'))
  }
  return out
}

describe('README and the device and integrator pages', () => {
  it('exist and point at nothing a clone does not have', () => {
    for (const page of PAGES) {
      const text = read(page)
      expect(text, page).not.toMatch(/\.\.\/shared|\bshared\/(CONTRACT|DESIGN|STYLE)/)
      // The team's contract and design notes are not in the repository.
      expect(text, page).not.toMatch(/\b(CONTRACT|DESIGN|STYLE)\.md\b/)
    }
  })

  it('name only repository paths that exist', () => {
    for (const page of PAGES) {
      const paths = [...read(page).matchAll(/`((?:docs|deploy|packages|services|simulators|test)\/[^`\s*{}]+)`/g)].map(
        (match) => match[1]!.replace(/\/$/, ''),
      )
      for (const path of paths) {
        expect(() => statSync(join(ROOT, path)), `${page}: ${path}`).not.toThrow()
      }
    }
  })

  it('name only metrics plantwatt registers', () => {
    const code = sources().join('\n')
    for (const page of PAGES) {
      for (const [metric] of read(page).matchAll(/plantwatt_[a-z_]+/g)) {
        expect(code.includes(`'${metric}'`), `${page}: ${metric}`).toBe(true)
      }
    }
  })

  it('link the device and integrator pages and the interface documents from the README', () => {
    const readme = read('README.md')
    expect(readme).toContain('docs/devices.md')
    expect(readme).toContain('docs/integrators.md')
    expect(readme).toContain('/api/v1/asyncapi.json')
    expect(readme).toContain('plantwatt plant schema')
  })
})

describe('README: what the tests install', () => {
  it('names every Debian package test/install-deps.sh installs', () => {
    const script = read('test/install-deps.sh')
    const packages =
      script
        .match(/^packages=\(([^)]*)\)/m)?.[1]
        ?.trim()
        .split(/\s+/) ?? []
    expect(packages.length).toBeGreaterThan(0)
    const readme = read('README.md')
    for (const name of packages) expect(readme, name).toContain(`\`${name}\``)
  })
})
