import { QueryTimeout } from '@plantwatt/bus'
import type { PlantIndex } from '@plantwatt/plant'
import { stringify } from 'csv-stringify/sync'
import type { FastifyInstance } from 'fastify'
import { type requireRole, scopeAllowed } from './access.ts'
import { errorBody } from './errors.ts'
import type { GatewayContext } from './gateway-context.ts'
import { parseTime } from './routes-data.ts'
import { ErrorSchema, errorResponses, ReportSchema, ScopeQuery } from './schemas.ts'

// GET /api/v1/reports (CONTRACT.md §6): the figures of a scope over the day, week, month or year
// holding `at`, local to its site, with the period before and the direct children. The processor
// sums them from the history (the `report` query over the bus, as /api/v1/energy); this route
// checks the token's scope and answers JSON, or CSV for `Accept: text/csv`.

type Guard = ReturnType<typeof requireRole>

type Figures = Record<(typeof FIGURE_COLUMNS)[number], number | null>
interface Report extends Figures {
  scope: string
  period: string
  from: number
  to: number
  previous: Figures & { from: number; to: number }
  children: (Figures & { scope: string })[]
}

/** The CSV's figure columns, named as in the JSON (§6: "these names as columns"). */
const FIGURE_COLUMNS = [
  'energyWh',
  'co2G',
  'co2MarketG',
  'pvShare',
  'idleWh',
  'idleCo2G',
  'peakKW',
  'peakAt',
  'outputUnits',
  'whPerUnit',
  'savedWh',
  'savedCo2G',
] as const

const COLUMNS = ['scope', 'period', 'from', 'to', ...FIGURE_COLUMNS]

const iso = (ms: number | null) => (ms === null ? '' : new Date(ms).toISOString())

/**
 * One row per scope, the scope first and then its children, a header row; times as ISO 8601 UTC
 * (a spreadsheet reads them as dates), a null figure as an empty cell. csv-stringify quotes what
 * needs quoting (RFC 4180).
 */
export function reportCsv(report: Report): string {
  const row = (scope: string, figures: Figures) => [
    scope,
    report.period,
    iso(report.from),
    iso(report.to),
    ...FIGURE_COLUMNS.map((name) => (name === 'peakAt' ? iso(figures.peakAt) : (figures[name] ?? ''))),
  ]
  const rows = [row(report.scope, report), ...report.children.map((child) => row(child.scope, child))]
  return stringify(rows, { header: true, columns: COLUMNS, record_delimiter: 'windows' })
}

/** The local date (YYYY-MM-DD) of a period's start, for the file name. */
function localDate(plant: PlantIndex, scope: string, ms: number): string {
  const timeZone = plant.sites.get(scope.split('/', 1)[0]!)?.spec.timezone ?? 'UTC'
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(ms)
}

export function reportFileName(plant: PlantIndex, report: Report): string {
  return `plantwatt-report-${report.scope.replaceAll('/', '_')}-${report.period}-${localDate(plant, report.scope, report.from)}.csv`
}

/** Whether the client asked for CSV (the first acceptable type of the Accept header decides). */
function wantsCsv(accept: string | undefined): boolean {
  if (accept === undefined) return false
  for (const part of accept.split(',')) {
    const type = part.split(';', 1)[0]!.trim().toLowerCase()
    if (type === 'text/csv') return true
    if (type === 'application/json') return false
  }
  return false
}

export function registerReportRoutes(app: FastifyInstance, context: GatewayContext, viewer: Guard): void {
  const { plant, queries } = context
  app.get(
    '/api/v1/reports',
    {
      onRequest: viewer,
      schema: {
        summary:
          'Figures of a scope over the local day, week (Monday to Monday), month or year holding `at`, with the period before and the direct children; CSV with Accept: text/csv',
        querystring: {
          type: 'object',
          required: ['scope', 'period'],
          properties: {
            scope: ScopeQuery,
            period: { type: 'string', enum: ['day', 'week', 'month', 'year'] },
            at: { type: 'string', description: "epoch ms or ISO 8601; default: the site's clock" },
          },
          additionalProperties: false,
        },
        produces: ['application/json', 'text/csv'],
        response: {
          200: {
            content: {
              'application/json': { schema: ReportSchema },
              'text/csv': {
                schema: {
                  type: 'string',
                  description: `a header row, then one row per scope (the scope, then its children): ${COLUMNS.join(',')}`,
                },
              },
            },
          },
          503: ErrorSchema,
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const query = request.query as { scope: string; period: string; at?: string }
      if (!scopeAllowed(plant, request.principal!, query.scope, reply)) return reply
      const atMs = parseTime(query.at)
      if (Number.isNaN(atMs)) {
        return reply.code(400).send(errorBody('bad_request', '"at" must be an epoch ms or ISO 8601 time'))
      }
      let report: Report
      try {
        report = await queries.call<Report>('report', { scope: query.scope, period: query.period, atMs })
      } catch (error) {
        if (error instanceof QueryTimeout) {
          return reply.code(503).send(errorBody('unavailable', 'the processor did not answer; try again'))
        }
        throw error
      }
      if (wantsCsv(request.headers.accept)) {
        return reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="${reportFileName(plant, report)}"`)
          .send(reportCsv(report))
      }
      return reply.type('application/json; charset=utf-8').send(report)
    },
  )
}
