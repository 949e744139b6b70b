import type { FastifyInstance } from 'fastify'

/**
 * The operators' dashboard at `/` (CONTRACT.md §6): static files, no token needed to load the
 * page (the page asks for one and speaks /ws and /api/v1 with it).
 */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send('<!doctype html><title>plantwatt</title><p>dashboard coming</p>'),
  )
}
