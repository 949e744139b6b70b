import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'

// No Docker engine runs here, so the deployment files are checked as files: they parse, every
// service can be built or pulled, and everything they point at exists in the repository.

const ROOT = join(import.meta.dirname, '../..')
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'))

describe('docker-compose.yml', () => {
  it('defines plantwatt, InfluxDB and Grafana, each with an image or a build', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['grafana', 'influxdb', 'plantwatt'])
    for (const [name, service] of Object.entries<Record<string, unknown>>(compose.services)) {
      expect(Boolean(service.image) || Boolean(service.build), `${name} has an image or a build`).toBe(true)
    }
  })

  it('builds plantwatt from a Dockerfile that exists and copies only what exists', () => {
    const dockerfile = join(ROOT, compose.services.plantwatt.build.dockerfile)
    expect(existsSync(dockerfile)).toBe(true)
    for (const line of readFileSync(dockerfile, 'utf8').split('\n')) {
      const copy = line.match(/^COPY (.+) \S+$/)
      if (!copy) continue
      for (const source of copy[1]!.split(' ')) expect(existsSync(join(ROOT, source)), `${source} exists`).toBe(true)
    }
  })

  it('mounts only files of the repository, and publishes valid port mappings', () => {
    for (const [name, service] of Object.entries<{ volumes?: string[]; ports?: string[] }>(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!
        if (source.startsWith('./')) expect(existsSync(join(ROOT, source)), `${name}: ${source}`).toBe(true)
        else expect(Object.keys(compose.volumes), `${name}: named volume ${source}`).toContain(source)
      }
      for (const port of service.ports ?? []) expect(port).toMatch(/^\d{1,5}:\d{1,5}$/)
    }
  })

  it('passes plantwatt only options that the plantwatt command reads', () => {
    const cli = readFileSync(join(ROOT, 'services/cli/src/main.ts'), 'utf8')
    for (const variable of Object.keys(compose.services.plantwatt.environment)) {
      expect(cli.includes(`'${variable}'`) || variable === 'PLANTWATT_ADMIN_TOKEN', variable).toBe(true)
    }
  })
})
