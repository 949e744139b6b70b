import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'

// No Docker engine runs here, so the deployment files are checked as files: they parse, every
// service can be built or pulled, and everything they point at exists in the repository.

const ROOT = join(import.meta.dirname, '../..')
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'))
const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8').split('\n')

/**
 * Compose's variable interpolation with nothing set in the environment: `${VAR:-default}` gives
 * its default, `${VAR:?message}` makes `docker compose` refuse to start (listed in `required`),
 * and a bare `${VAR}` is an empty string.
 */
function interpolate(text: string): { value: string; required: string[] } {
  const required: string[] = []
  const value = String(text).replace(
    /\$\{(\w+)(?:(:?[-?])([^}]*))?\}/g,
    (_, name: string, op?: string, arg?: string) => {
      if (op?.endsWith('?')) required.push(name)
      return op?.endsWith('-') ? (arg ?? '') : ''
    },
  )
  return { value, required }
}

const environment = (service: string): Record<string, string> => compose.services[service].environment ?? {}

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
      for (const port of service.ports ?? []) {
        expect(interpolate(port).value, `${name}: ${port}`).toMatch(/^(\d{1,3}\.){3}\d{1,3}:\d{1,5}:\d{1,5}$/)
      }
    }
  })

  it('passes plantwatt only options that the plantwatt command reads', () => {
    const cli = readFileSync(join(ROOT, 'services/cli/src/main.ts'), 'utf8')
    for (const variable of Object.keys(compose.services.plantwatt.environment)) {
      expect(cli.includes(`'${variable}'`) || variable === 'PLANTWATT_ADMIN_TOKEN', variable).toBe(true)
    }
  })
})

// Issue 12, finding 19: nothing in the deployment starts with a default password or token, and
// nothing is published beyond the machine until the operator says so.
describe('docker-compose.yml: secure defaults', () => {
  it('publishes Grafana on 127.0.0.1 only, with its admin password required and anonymous access off', () => {
    const grafana = compose.services.grafana
    expect(grafana.ports.length).toBeGreaterThan(0)
    for (const port of grafana.ports) expect(port).toMatch(/^127\.0\.0\.1:\d+:\d+$/)
    const env = environment('grafana')
    expect(interpolate(env.GF_SECURITY_ADMIN_PASSWORD ?? '').required).toEqual(['GRAFANA_ADMIN_PASSWORD'])
    expect(String(env.GF_AUTH_ANONYMOUS_ENABLED)).toBe('false')
  })

  it('requires the InfluxDB password and token from the environment, with no fixed fallback', () => {
    const influx = environment('influxdb')
    expect(interpolate(influx.DOCKER_INFLUXDB_INIT_PASSWORD ?? '').required).toEqual(['INFLUXDB_PASSWORD'])
    expect(interpolate(influx.DOCKER_INFLUXDB_INIT_ADMIN_TOKEN ?? '').required).toEqual(['PLANTWATT_INFLUX_TOKEN'])
    expect(interpolate(environment('plantwatt').PLANTWATT_INFLUX_TOKEN ?? '').required).toEqual([
      'PLANTWATT_INFLUX_TOKEN',
    ])
    expect(interpolate(environment('plantwatt').PLANTWATT_ADMIN_TOKEN ?? '').required).toEqual([
      'PLANTWATT_ADMIN_TOKEN',
    ])
  })

  it('gives no secret a default anywhere in the file', () => {
    const text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
    const defaulted = [...text.matchAll(/\$\{(\w+):?-/g)].map((match) => match[1]!)
    expect(defaulted.filter((name) => /TOKEN|PASSWORD|SECRET|KEY/i.test(name))).toEqual([])
  })

  it('binds plantwatt ports to 127.0.0.1 unless the operator chooses another address', () => {
    const ports: string[] = compose.services.plantwatt.ports
    expect(ports.length).toBeGreaterThan(0)
    for (const port of ports) {
      // Nothing set: loopback only (as `plantwatt --host` defaults to 127.0.0.1, CONTRACT.md §8).
      expect(interpolate(port).value).toMatch(/^127\.0\.0\.1:\d+:\d+$/)
      // The address comes from one variable, so that publishing to the network is a choice.
      expect(port).toMatch(/^\$\{PLANTWATT_PUBLISH_ADDRESS:-127\.0\.0\.1\}:\d+:\d+$/)
    }
  })
})

describe('deploy/Dockerfile', () => {
  const index = (pattern: RegExp) => dockerfile.findIndex((line) => pattern.test(line))

  it('makes /data, owned by node and 0700, before declaring the volume and dropping to node', () => {
    const volume = index(/^VOLUME\s+\/data\b/)
    const user = index(/^USER\s+node\b/)
    // Changes to a volume's path after VOLUME are discarded, so the directory is made before it.
    const make = index(/^RUN\b.*\bmkdir\b.*\/data\b/)
    expect(volume).toBeGreaterThan(-1)
    expect(user).toBeGreaterThan(-1)
    expect(make).toBeGreaterThan(-1)
    expect(make).toBeLessThan(volume)
    expect(make).toBeLessThan(user)
    expect(dockerfile[make]).toMatch(/\bchown\s+node(:node)?\s+\/data\b/)
    expect(dockerfile[make]).toMatch(/\bchmod\s+0?700\s+\/data\b/)
  })
})
