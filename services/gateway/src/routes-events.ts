import {
  ALERT_ACK_TOPIC,
  type AlertAckRequest,
  encodeMessage,
  QueryTimeout,
  SETPOINT_ACTION_TOPIC,
  type SetpointActionRequest,
  TUNING_TOPIC,
  type TuningRequest,
} from '@plantwatt/bus'
import type { Alert } from '@plantwatt/contract'
import { isWithinScope } from '@plantwatt/plant'
import type { TokenRecord } from '@plantwatt/runtime'
import type { FastifyInstance } from 'fastify'
import { mayAccessScope, type requireRole, scopeAllowed } from './access.ts'
import { errorBody } from './errors.ts'
import type { EventReplica, HeldEvent } from './event-replica.ts'
import type { GatewayContext } from './gateway-context.ts'
import { AlertSchema, ErrorSchema, errorResponses, ScopeQuery, SetpointEventSchema } from './schemas.ts'

// Alerts and setpoint events over HTTP (CONTRACT.md §6): the lists, an operator's acknowledgement,
// approval or rejection, and the tuning mode. Actions go to the processor (and tuner) over the
// bus; the answer is the event that comes back, or 202 when it has not come back in time.

type Guard = ReturnType<typeof requireRole>

/** One tuned equipment as the processor's tuning loop answers the `setpoints` query. */
interface TunerStatus {
  scope: string
  savedCo2G?: number | null
  [field: string]: unknown
}

/** Scopes a request may list: within `scope` when given, and always within the token's scopes. */
function scopeFilter(principal: TokenRecord, scope: string | undefined) {
  return (eventScope: string) =>
    (scope === undefined || isWithinScope(eventScope, scope)) && mayAccessScope(principal, eventScope)
}

/** Resolves with the replica's latest event of `id` once `done` holds for it, or undefined after `ms`. */
function waitForEvent<T>(
  replica: EventReplica<T>,
  id: string,
  done: (event: T) => boolean,
  ms: number,
): Promise<HeldEvent<T> | undefined> {
  return new Promise((resolve) => {
    const finish = (held: HeldEvent<T> | undefined) => {
      clearTimeout(timer)
      unlisten()
      resolve(held)
    }
    const check = () => {
      const held = replica.find(id)
      if (held && done(held.event)) finish(held)
    }
    const timer = setTimeout(() => finish(undefined), ms)
    const unlisten = replica.listen({ appended: check, lost: () => {} })
    check()
  })
}

const withSeq = <T extends object>(held: HeldEvent<T>) => ({ seq: held.seq, ...held.event })

export function registerEventRoutes(
  app: FastifyInstance,
  context: GatewayContext,
  guards: { viewer: Guard; operator: Guard },
): void {
  const { alerts, setpoints, bus, queries } = context

  app.get(
    '/api/v1/alerts',
    {
      onRequest: guards.viewer,
      schema: {
        summary: 'Alerts, newest first, each in its latest state',
        querystring: {
          type: 'object',
          properties: {
            scope: ScopeQuery,
            state: { type: 'string', enum: ['raised', 'acked', 'cleared', 'open'] },
            after: { type: 'integer', minimum: 0, description: 'only alerts whose latest event has a greater seq' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'array', items: AlertSchema }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { scope, state, after, limit } = request.query as {
        scope?: string
        state?: Alert['state'] | 'open'
        after?: number
        limit: number
      }
      const principal = request.principal!
      if (!scopeAllowed(context.plant, principal, scope, reply)) return reply
      const out: object[] = []
      for (const held of alerts.latest(scopeFilter(principal, scope))) {
        if (after !== undefined && held.seq <= after) break
        const alertState = held.event.state
        if (state === 'open' ? alertState === 'cleared' : state !== undefined && alertState !== state) continue
        out.push(withSeq(held))
        if (out.length >= limit) break
      }
      return out
    },
  )

  app.post(
    '/api/v1/alerts/:id/ack',
    {
      onRequest: guards.operator,
      schema: {
        summary: 'Acknowledge an open alert (operator)',
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 128 } }, required: ['id'] },
        response: {
          200: AlertSchema,
          202: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string' } } },
          409: ErrorSchema,
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string }
      const principal = request.principal!
      const held = alerts.find(id)
      if (!held || !mayAccessScope(principal, held.event.scope)) {
        // Outside the token's scopes it does not exist for this caller.
        return reply.code(404).send(errorBody('not_found', `no alert ${id}`))
      }
      if (held.event.state !== 'raised') {
        return reply.code(409).send(errorBody('conflict', `alert ${id} is already ${held.event.state}`))
      }
      const ack: AlertAckRequest = { id, atMs: context.now(), by: principal.name }
      const acked = waitForEvent(alerts, id, (alert) => alert.state !== 'raised', context.ackWaitMs)
      await bus.publish(ALERT_ACK_TOPIC, encodeMessage(ack), { qos: 1 })
      const result = await acked
      if (!result) return reply.code(202).send({ id, status: 'ack requested' })
      if (result.event.state === 'cleared') {
        return reply.code(409).send(errorBody('conflict', `alert ${id} cleared before the acknowledgement`))
      }
      return withSeq(result)
    },
  )

  app.get(
    '/api/v1/setpoints',
    {
      onRequest: guards.viewer,
      schema: {
        summary: 'Tuning status and history per tuned equipment',
        querystring: { type: 'object', properties: { scope: ScopeQuery }, additionalProperties: false },
        response: {
          200: {
            type: 'object',
            properties: {
              equipment: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    scope: { type: 'string' },
                    setpoint: { type: 'string' },
                    mode: { type: 'string' },
                    status: { type: 'string', description: 'waiting, tuning, proposed or held' },
                    heldReason: { type: ['string', 'null'] },
                    current: { type: ['number', 'null'] },
                    start: { type: ['number', 'null'], description: 'the setpoint savings are measured against' },
                    lastGood: { type: ['number', 'null'] },
                    proposed: {
                      type: ['object', 'null'],
                      properties: { id: { type: 'string' }, to: { type: 'number' } },
                    },
                    moves: { type: 'integer' },
                    history: { type: 'array', items: SetpointEventSchema },
                    savedWh: { type: ['number', 'null'] },
                    savedCo2G: { type: ['number', 'null'] },
                  },
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
      const { scope } = request.query as { scope?: string }
      const principal = request.principal!
      if (!scopeAllowed(context.plant, principal, scope, reply)) return reply
      const within = scopeFilter(principal, scope)
      // The tuners' state is the processor's (issue 15): asked over the bus query path.
      let tuners: TunerStatus[]
      try {
        tuners = (await queries.call('setpoints', { scope })) as TunerStatus[]
      } catch (error) {
        if (error instanceof QueryTimeout) {
          return reply.code(503).send(errorBody('unavailable', 'the processor did not answer; try again'))
        }
        throw error
      }
      const equipment = []
      for (const tuner of tuners) {
        if (!within(tuner.scope)) continue
        // savedCo2G: the bucket frames carry it per bucket (CONTRACT.md §5); no total is kept yet.
        equipment.push({ ...tuner, savedCo2G: tuner.savedCo2G ?? null })
      }
      return { equipment }
    },
  )

  for (const action of ['approve', 'reject'] as const) {
    app.post(
      `/api/v1/setpoints/:eventId/${action}`,
      {
        onRequest: guards.operator,
        schema: {
          summary: `${action === 'approve' ? 'Approve' : 'Reject'} a setpoint proposal (operator)`,
          params: {
            type: 'object',
            properties: { eventId: { type: 'string', maxLength: 128 } },
            required: ['eventId'],
          },
          response: {
            200: SetpointEventSchema,
            202: { type: 'object', properties: { id: { type: 'string' }, action: { type: 'string' } } },
            409: ErrorSchema,
            ...errorResponses,
          },
        },
      },
      async (request, reply) => {
        const { eventId } = request.params as { eventId: string }
        const principal = request.principal!
        const held = setpoints.find(eventId)
        if (!held || !mayAccessScope(principal, held.event.scope)) {
          return reply.code(404).send(errorBody('not_found', `no setpoint event ${eventId}`))
        }
        if (held.event.status !== 'proposed') {
          return reply.code(409).send(errorBody('conflict', `setpoint event ${eventId} is ${held.event.status}`))
        }
        const message: SetpointActionRequest = { id: eventId, action, atMs: context.now(), by: principal.name }
        // The answer is the event that comes back (approved, sent, held or rejected), as for an
        // alert's ack; 202 when it has not come back within ackWaitMs.
        const settled = waitForEvent(setpoints, eventId, (event) => event.status !== 'proposed', context.ackWaitMs)
        await bus.publish(SETPOINT_ACTION_TOPIC, encodeMessage(message), { qos: 1 })
        const result = await settled
        if (!result) return reply.code(202).send({ id: eventId, action })
        return withSeq(result)
      },
    )
  }

  app.put(
    '/api/v1/tuning',
    {
      onRequest: guards.operator,
      schema: {
        summary: 'Set the mode of every tuner at once (operator)',
        body: {
          type: 'object',
          properties: { mode: { type: 'string', enum: ['auto', 'advise', 'off'] } },
          required: ['mode'],
          additionalProperties: false,
        },
        response: { 202: { type: 'object', properties: { mode: { type: 'string' } } }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { mode } = request.body as { mode: TuningRequest['mode'] }
      if (request.principal!.scopes.length > 0) {
        return reply
          .code(403)
          .send(errorBody('forbidden', 'the tuning mode of the whole plant needs an unscoped token'))
      }
      const message: TuningRequest = { mode, atMs: context.now(), by: request.principal!.name }
      await bus.publish(TUNING_TOPIC, encodeMessage(message), { qos: 1 })
      return reply.code(202).send({ mode })
    },
  )
}
