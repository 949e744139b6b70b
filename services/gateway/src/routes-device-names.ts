import { QueryTimeout } from '@plantwatt/bus'
import type { FastifyInstance } from 'fastify'
import { deviceScopeFor, type requireRole } from './access.ts'
import { errorBody } from './errors.ts'
import type { GatewayContext } from './gateway-context.ts'
import { ErrorSchema, errorResponses } from './schemas.ts'

// DELETE /api/v1/devices/{id}/names (CONTRACT.md §2 v1.1, admin): the processor forgets a device's
// process-variable names at once, so that a device whose names changed (new firmware) need not wait
// `maxAgeS` for room under the 16-name bound. Asked over the bus like GET /api/v1/devices/{id}.

type Guard = ReturnType<typeof requireRole>

export function registerDeviceNameRoutes(app: FastifyInstance, context: GatewayContext, admin: Guard): void {
  const { plant, queries } = context

  app.delete(
    '/api/v1/devices/:id/names',
    {
      onRequest: admin,
      schema: {
        summary: "Forget a device's process-variable names at once (admin)",
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              forgotten: { type: 'integer', description: 'how many names were forgotten' },
            },
          },
          503: ErrorSchema,
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string }
      if (deviceScopeFor(plant, request.principal!, id) === undefined) {
        return reply.code(404).send(errorBody('not_found', `no device ${id}`))
      }
      let answer: { forgotten: number } | null
      try {
        answer = await queries.call('forgetNames', { id })
      } catch (error) {
        if (error instanceof QueryTimeout) {
          return reply.code(503).send(errorBody('unavailable', 'the processor did not answer; try again'))
        }
        throw error
      }
      request.log.info(
        { deviceId: id, forgotten: answer?.forgotten ?? 0, by: request.principal!.name },
        'device names forgotten',
      )
      return { id, forgotten: answer?.forgotten ?? 0 }
    },
  )
}
