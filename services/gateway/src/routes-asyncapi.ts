import { asyncApiDocument } from '@plantwatt/contract'
import type { FastifyInstance } from 'fastify'

/**
 * `GET /api/v1/asyncapi.json`: the AsyncAPI document of the MQTT topics and the WebSocket
 * protocol (CONTRACT.md §2–§5), beside the OpenAPI document: no token (it holds no plant data);
 * the gateway's per-address rate limit of /api/ applies. Built once; it does not change while the
 * process runs.
 */
export function registerAsyncApiRoute(app: FastifyInstance): void {
  const document = asyncApiDocument()
  app.get(
    '/api/v1/asyncapi.json',
    {
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
