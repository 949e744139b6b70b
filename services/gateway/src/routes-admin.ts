import { CARBON_TOPIC, type CarbonRequest, encodeMessage } from '@plantwatt/bus'
import { type SiteCarbon, SiteCarbonSchema } from '@plantwatt/contract'
import { ROLES, type Role } from '@plantwatt/runtime'
import type { FastifyInstance } from 'fastify'
import { mayGrant, mayManage, type requireRole } from './access.ts'
import { errorBody } from './errors.ts'
import type { GatewayContext } from './gateway-context.ts'
import { errorResponses, TokenSchema } from './schemas.ts'

// Admin routes (CONTRACT.md §4, §6): tokens, issued once in clear and stored hashed, listed and
// revoked; a site's carbon figures, relayed to the processor for the buckets that follow.

type Guard = ReturnType<typeof requireRole>

export function registerAdminRoutes(app: FastifyInstance, context: GatewayContext, admin: Guard): void {
  const { tokens, plant } = context

  app.post(
    '/api/v1/tokens',
    {
      onRequest: admin,
      schema: {
        summary: 'Issue a token (admin); the token is in this answer only',
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            role: { type: 'string', enum: [...ROLES] },
            scopes: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 100 },
          },
          required: ['name', 'role'],
          additionalProperties: false,
        },
        response: {
          201: { type: 'object', properties: { token: { type: 'string' }, ...TokenSchema.properties } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { name: string; role: Role; scopes?: string[] }
      const unknown = (body.scopes ?? []).filter((scope) => !plant.scope(scope))
      if (unknown.length > 0) {
        return reply.code(400).send(errorBody('bad_request', `unknown scopes: ${unknown.join(', ')}`))
      }
      if (!mayGrant(request.principal!, { role: body.role, scopes: body.scopes ?? [] })) {
        return reply
          .code(403)
          .send(errorBody('forbidden', 'a token may be issued only with a role and scopes within the issuer’s'))
      }
      const { token, record } = await tokens.issue(body)
      const { hash: _hash, ...visible } = record
      request.log.info({ tokenId: record.id, role: record.role, by: request.principal!.name }, 'token issued')
      return reply.code(201).send({ token, ...visible })
    },
  )

  app.get(
    '/api/v1/tokens',
    {
      onRequest: admin,
      schema: {
        summary: 'List tokens (admin); never their secrets',
        response: {
          200: { type: 'object', properties: { tokens: { type: 'array', items: TokenSchema } } },
          ...errorResponses,
        },
      },
    },
    // A scoped admin sees only the tokens it could have issued itself.
    async (request) => ({ tokens: tokens.list().filter((token) => mayManage(request.principal!, token)) }),
  )

  app.delete(
    '/api/v1/tokens/:id',
    {
      onRequest: admin,
      schema: {
        summary: 'Revoke a token (admin)',
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string }
      const target = tokens.list().find((token) => token.id === id)
      if (target && !mayManage(request.principal!, target)) {
        return reply.code(403).send(errorBody('forbidden', 'this token may revoke only tokens within its scopes'))
      }
      if (!(await tokens.revoke(id))) return reply.code(404).send(errorBody('not_found', `no token ${id}`))
      // A revoked token ends its live connections too, not only its next HTTP request.
      context.closeConnectionsOf(id)
      request.log.info({ tokenId: id, by: request.principal!.name }, 'token revoked')
      return reply.code(204).send()
    },
  )

  app.put(
    '/api/v1/sites/:site/carbon',
    {
      onRequest: admin,
      schema: {
        summary: "Replace a site's carbon figures (admin), for the buckets after the site clock's minute",
        params: { type: 'object', properties: { site: { type: 'string', maxLength: 64 } }, required: ['site'] },
        body: SiteCarbonSchema,
        response: {
          200: { type: 'object', properties: { site: { type: 'string' }, carbon: SiteCarbonSchema } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { site } = request.params as { site: string }
      if (!plant.sites.has(site)) return reply.code(404).send(errorBody('unknown_scope', `no site "${site}"`))
      if (request.principal!.scopes.length > 0 && !request.principal!.scopes.includes(site)) {
        return reply.code(403).send(errorBody('forbidden', `this token may not change "${site}"`))
      }
      const carbon = request.body as SiteCarbon
      const message: CarbonRequest = { site, carbon, by: request.principal!.name }
      await context.bus.publish(CARBON_TOPIC, encodeMessage(message), { qos: 1 })
      request.log.info({ site, by: request.principal!.name }, 'carbon figures replaced')
      return { site, carbon }
    },
  )
}
