import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { alertPoint, BUCKET_MEASUREMENT, bucketPoint } from '@plantwatt/history'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'

// The Grafana that docker-compose.yml provisions from deploy/: its dashboards query InfluxDB with
// Flux, and every measurement, field and tag a query names must be one plantwatt writes. The names
// come from the history package's own point builders, not from a copy.

const ROOT = join(import.meta.dirname, '../..')
const PROVISIONING = join(ROOT, 'deploy/grafana/provisioning')
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'))

/** What plantwatt writes, per measurement: the points of a bucket and an alert with every optional part. */
const bucket = bucketPoint({
  scope: 'site/area/line/equipment',
  step: '15m',
  t: 0,
  energyWh: 1,
  co2G: 1,
  co2MarketG: 1,
  idleWh: 1,
  peakW: 1,
  revision: 0,
  outputUnits: 1,
  idleCo2G: 1,
  pvWh: 1,
  savedWh: 1,
  savedCo2G: 1,
})
const alert = alertPoint({
  id: 'a',
  kind: 'idle',
  state: 'cleared',
  severity: 'warning',
  scope: 'site/area/line/equipment',
  at: 0,
  since: 0,
  message: 'm',
  data: { powerW: 1, durationS: 1, wastedWh: 1, wastedCo2G: 1 },
  seq: 1,
})
const WRITTEN = new Map(
  [bucket, alert].map((point) => [
    point.measurement,
    { tags: new Set(Object.keys(point.tags)), fields: new Set(Object.keys(point.fields)) },
  ]),
)
/** Columns every Flux table has. */
const FLUX_COLUMNS = new Set(['_measurement', '_field', '_value', '_time', '_start', '_stop'])
const STEPS = new Set(['1m', '15m', '1h', '1d'])

const datasources = parse(readFileSync(join(PROVISIONING, 'datasources/influxdb.yml'), 'utf8')).datasources as {
  uid?: string
  jsonData: { defaultBucket: string }
}[]

function providers(): { options: { path: string } }[] {
  const dir = join(PROVISIONING, 'dashboards')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yml') || name.endsWith('.yaml'))
    .flatMap((name) => parse(readFileSync(join(dir, name), 'utf8')).providers ?? [])
}

/** The provider's path inside the Grafana container, mapped back to the repository by compose's mount. */
function repositoryPath(containerPath: string): string {
  for (const volume of compose.services.grafana.volumes as string[]) {
    const [source, target] = volume.split(':') as [string, string]
    if (containerPath === target || containerPath.startsWith(`${target}/`)) {
      return join(ROOT, source, containerPath.slice(target.length))
    }
  }
  throw new Error(`${containerPath} is not mounted into Grafana`)
}

interface Dashboard {
  file: string
  json: any
}

function dashboards(): Dashboard[] {
  return providers().flatMap((provider) => {
    const dir = repositoryPath(provider.options.path)
    return readdirSync(dir)
      .filter((name) => name.endsWith('.json'))
      .map((name) => ({ file: name, json: JSON.parse(readFileSync(join(dir, name), 'utf8')) }))
  })
}

function panels(dashboard: any): any[] {
  return (dashboard.panels ?? []).flatMap((panel: any) => [panel, ...(panel.panels ?? [])])
}

/** Every Flux query of a dashboard: panel targets and template variables. */
function queries(dashboard: any): { where: string; query: string; datasource: any }[] {
  const out: { where: string; query: string; datasource: any }[] = []
  for (const panel of panels(dashboard)) {
    for (const target of panel.targets ?? []) {
      out.push({
        where: `panel "${panel.title}"`,
        query: String(target.query ?? ''),
        datasource: target.datasource ?? panel.datasource,
      })
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query
    out.push({ where: `variable ${variable.name}`, query: String(query ?? ''), datasource: variable.datasource })
  }
  return out
}

const all = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((match) => match[1]!)

describe('Grafana provisioning', () => {
  it('provisions dashboards from a folder of the repository that compose mounts into Grafana', () => {
    expect(providers().length).toBeGreaterThan(0)
    const found = dashboards()
    expect(found.length).toBeGreaterThan(0)
    for (const { file, json } of found) {
      expect(json.uid, file).toMatch(/^[a-zA-Z0-9_-]{1,40}$/)
      expect(json.title, file).toBeTruthy()
    }
  })

  it('names only measurements, fields and tags plantwatt writes, and the data source and bucket provisioned', () => {
    const uid = datasources[0]!.uid
    expect(uid).toBeTruthy()
    let checked = 0
    for (const { file, json } of dashboards()) {
      for (const { where, query, datasource } of queries(json)) {
        const at = `${file}, ${where}`
        expect(query, at).not.toBe('')
        expect(datasource?.uid, at).toBe(uid)
        for (const name of all(query, /from\(bucket:\s*"([^"]+)"\)/g))
          expect(name, at).toBe(datasources[0]!.jsonData.defaultBucket)
        const measurements = all(query, /r\._measurement\s*==\s*"([^"]+)"/g)
        expect(measurements.length, `${at}: filters on a measurement`).toBeGreaterThan(0)
        for (const measurement of measurements) {
          const written = WRITTEN.get(measurement)
          expect(written, `${at}: measurement ${measurement}`).toBeDefined()
          for (const field of all(query, /r\._field\s*==\s*"([^"]+)"/g))
            expect([...written!.fields], `${at}: field`).toContain(field)
          for (const tag of all(query, /tag:\s*"([^"]+)"/g)) expect([...written!.tags], `${at}: tag`).toContain(tag)
          // r.x: a tag, a field (after a pivot) or a column every Flux table has.
          const columns = new Set([...written!.tags, ...written!.fields, ...FLUX_COLUMNS])
          for (const column of all(query, /\br\.(\w+)/g)) expect([...columns], `${at}: r.${column}`).toContain(column)
          for (const column of all(query, /\br\["([^"]+)"\]/g))
            expect([...columns], `${at}: r["${column}"]`).toContain(column)
        }
        for (const step of all(query, /r\.step\s*==\s*"([^"]+)"/g)) expect([...STEPS], `${at}: step`).toContain(step)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(5)
  })

  it('has the panels an energy manager asks for: site and line energy, both carbon figures, PV share, idle waste, 15-minute demand with the month peak', () => {
    const texts = dashboards().flatMap(({ json }) => queries(json).map((q) => q.query))
    const panelQueries = (test: (query: string) => boolean) => texts.filter(test)
    const bucketQuery = (q: string) => q.includes(`r._measurement == "${BUCKET_MEASUREMENT}"`)
    expect(
      panelQueries((q) => bucketQuery(q) && q.includes('"energyWh"') && q.includes('not exists r.area')),
    ).not.toEqual([])
    expect(panelQueries((q) => bucketQuery(q) && q.includes('"energyWh"') && q.includes('exists r.line'))).not.toEqual(
      [],
    )
    expect(panelQueries((q) => bucketQuery(q) && q.includes('"co2G"'))).not.toEqual([])
    expect(panelQueries((q) => bucketQuery(q) && q.includes('"co2MarketG"'))).not.toEqual([])
    expect(panelQueries((q) => bucketQuery(q) && q.includes('"pvWh"'))).not.toEqual([])
    expect(panelQueries((q) => bucketQuery(q) && q.includes('"idleWh"'))).not.toEqual([])
    expect(
      panelQueries((q) => bucketQuery(q) && q.includes('r.step == "15m"') && q.includes('every: 1mo')),
    ).not.toEqual([])
  })

  it('gives Grafana the InfluxDB token the data source reads', () => {
    const text = readFileSync(join(PROVISIONING, 'datasources/influxdb.yml'), 'utf8')
    const variable = text.match(/token:\s*\$\{(\w+)\}/)?.[1]
    expect(variable).toBeTruthy()
    expect(Object.keys(compose.services.grafana.environment)).toContain(variable)
  })
})
