import { asyncApiDocument } from '@plantwatt/contract'
import type { FastifyInstance } from 'fastify'

/**
 * `GET /api/v1/asyncapi.json`: the AsyncAPI document of the MQTT topics and the WebSocket
 * protocol (CONTRACT.md §2–§5), beside the OpenAPI document and served like it: no token (it
 * holds no plant data), no rate limit. Built once; it does not change while the process runs.
 */
export function registerAsyncApiRoute(app: FastifyInstance): void {
  const document = asyncApiDocument()
  app.get(
    '/api/v1/asyncapi.json',
    {
      config: { rateLimit: false },
      schema: {
        summary: 'AsyncAPI document of the device MQTT topics and the WebSocket /ws protocol',
        tags: ['documents'],
        security: [],
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async () => document,
  )
}
