import { type EquipmentLive, QueryTimeout } from '@plantwatt/bus'
import { BUCKET_STEPS, type BucketStep, type LiveFigures } from '@plantwatt/contract'
import type { FastifyInstance } from 'fastify'
import { deviceScopeFor, type requireRole, scopeAllowed } from './access.ts'
import { errorBody } from './errors.ts'
import type { GatewayContext } from './gateway-context.ts'
import { plantView } from './plant-view.ts'
import { BucketRowSchema, ErrorSchema, errorResponses, LiveSchema, ScopeQuery } from './schemas.ts'

// Read-only figures (CONTRACT.md §6): the plant tree, live figures, bucket history and a device's
// counters. History and device counters are the processor's: asked over the bus.

type Guard = ReturnType<typeof requireRole>

const UNAVAILABLE = 'the processor did not answer; try again'

/** ECMAScript's time range (±100,000,000 days), the most a date can be. */
const MAX_TIME_MS = 8.64e15

/**
 * `from`/`to` as epoch ms or an ISO 8601 time; undefined when absent, NaN when unreadable or out
 * of the range of dates (`to` of 400 nines is Infinity as a number: a 400, not a 500 from the bus).
 */
export function parseTime(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const ms = /^-?\d+$/.test(value) ? Number(value) : Date.parse(value)
  return Math.abs(ms) <= MAX_TIME_MS ? ms : Number.NaN
}

export function registerDataRoutes(app: FastifyInstance, context: GatewayContext, viewer: Guard): void {
  const { plant, live, queries } = context

  app.get(
    '/api/v1/plant',
    {
      onRequest: viewer,
      schema: {
        summary: "The plant tree with each equipment's state, power, idle thresholds in force and tuning",
        querystring: {
          type: 'object',
          properties: {
            depth: {
              type: 'string',
              enum: ['site', 'area', 'line', 'equipment'],
              default: 'equipment',
              description: 'the deepest level listed',
            },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'object', additionalProperties: true }, 503: ErrorSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { depth } = request.query as { depth: 'site' | 'area' | 'line' | 'equipment' }
      const principal = request.principal!
      // Equipment states are the processor's, asked on request (issue 14: it streams only watched
      // scopes' figures); a tree that stops above the equipment needs none.
      let equipment: Record<string, EquipmentLive> = {}
      if (depth === 'equipment') {
        try {
          equipment = await queries.call('equipment', principal.scopes?.length ? { scopes: principal.scopes } : {})
        } catch (error) {
          if (error instanceof QueryTimeout) return reply.code(503).send(errorBody('unavailable', UNAVAILABLE))
          throw error
        }
      }
      return plantView(plant, principal, (scope) => equipment[scope], depth)
    },
  )

  app.get(
    '/api/v1/live',
    {
      onRequest: viewer,
      schema: {
        summary: 'The figures of a scope, as a live frame carries them',
        querystring: { type: 'object', required: ['scope'], properties: { scope: ScopeQuery } },
        response: { 200: LiveSchema, 503: ErrorSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { scope } = request.query as { scope: string }
      if (!scopeAllowed(plant, request.principal!, scope, reply)) return reply
      // A watched scope's figures are here, at most a second old; any other is computed on request.
      const held = live.current(scope)
      if (held) return { type: 'live', ...held }
      try {
        const figures = await queries.call<LiveFigures | null>('live', { scope })
        if (!figures) return reply.code(404).send(errorBody('not_found', `no scope "${scope}"`))
        return { type: 'live', ...figures }
      } catch (error) {
        if (error instanceof QueryTimeout) return reply.code(503).send(errorBody('unavailable', UNAVAILABLE))
        throw error
      }
    },
  )

  app.get(
    '/api/v1/energy',
    {
      onRequest: viewer,
      schema: {
        summary: 'Buckets of a scope with from ≤ t < to, ordered by t',
        querystring: {
          type: 'object',
          required: ['scope'],
          properties: {
            scope: ScopeQuery,
            step: { type: 'string', enum: [...BUCKET_STEPS], default: '1m' },
            from: { type: 'string', description: 'epoch ms or ISO 8601; default: the oldest held' },
            to: { type: 'string', description: 'epoch ms or ISO 8601 (exclusive); default: the newest' },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'array', items: BucketRowSchema }, 503: ErrorSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const query = request.query as { scope: string; step: BucketStep; from?: string; to?: string }
      if (!scopeAllowed(plant, request.principal!, query.scope, reply)) return reply
      const fromMs = parseTime(query.from) ?? 0
      const toMs = parseTime(query.to) ?? Number.MAX_SAFE_INTEGER
      if (Number.isNaN(fromMs) || Number.isNaN(toMs)) {
        return reply.code(400).send(errorBody('bad_request', '"from" and "to" must be epoch ms or ISO 8601 times'))
      }
      try {
        const answer = await queries.call<unknown>('energy', { scope: query.scope, step: query.step, fromMs, toMs })
        if (Array.isArray(answer)) return answer
        // §6: at most 100,000 buckets per answer, else 400 naming a coarser step.
        const { limit, coarserStep } = (answer ?? {}) as { limit?: number; coarserStep?: string | null }
        const advice = coarserStep ? `ask step=${coarserStep} or a shorter range` : 'ask a shorter range'
        return reply
          .code(400)
          .send(
            errorBody('bad_request', `more than ${limit ?? 100_000} ${query.step} buckets in this range: ${advice}`),
          )
      } catch (error) {
        if (error instanceof QueryTimeout) {
          return reply.code(503).send(errorBody('unavailable', 'the processor did not answer; try again'))
        }
        throw error
      }
    },
  )

  app.get(
    '/api/v1/devices/:id',
    {
      onRequest: viewer,
      schema: {
        summary: "A device's newest readings, last seen, and rejected records by reason",
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              site: { type: 'string' },
              role: { type: 'string' },
              equipment: { type: ['string', 'null'] },
              lastSeen: { type: ['number', 'null'], description: 'wall clock of its latest message, ms' },
              accepted: { type: 'integer' },
              duplicates: { type: 'integer' },
              rejected: { type: 'object', additionalProperties: { type: 'integer' } },
              last: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { name: { type: 'string' }, t: { type: 'number' }, value: { type: 'number' } },
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
      const { id } = request.params as { id: string }
      const device = plant.device(id)
      if (!device || deviceScopeFor(plant, request.principal!, id) === undefined) {
        return reply.code(404).send(errorBody('not_found', `no device ${id}`))
      }
      let counters: {
        lastSeenMs: number
        accepted: number
        duplicates: number
        rejected: Record<string, number>
        last: { name: string; t: number; value: number }[]
      } | null
      try {
        counters = await queries.call('device', { id })
      } catch (error) {
        if (error instanceof QueryTimeout) {
          return reply.code(503).send(errorBody('unavailable', 'the processor did not answer; try again'))
        }
        throw error
      }
      return {
        id,
        site: device.siteId,
        role: device.role,
        equipment: device.equipment?.scope ?? null,
        lastSeen: counters?.lastSeenMs ?? null,
        accepted: counters?.accepted ?? 0,
        duplicates: counters?.duplicates ?? 0,
        rejected: counters?.rejected ?? {},
        last: counters?.last ?? [],
      }
    },
  )
}
