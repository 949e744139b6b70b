import type { AddressInfo } from 'node:net'
import { createServer, type Server } from 'node:net'
import { type Bus, createAedesBus } from '@plantwatt/bus'
import type { PlantIndex } from '@plantwatt/plant'
import { Aedes, type AuthenticateError, type Client } from 'aedes'
import type { Logger } from 'pino'
import { DevicePolicy, type LoginRefusal } from './device-policy.ts'

export interface BrokerOptions {
  plant: PlantIndex
  deviceSecret: string
  logger: Logger
}

export interface BrokerStats {
  connected: number
  connects: number
  refusals: Record<LoginRefusal, number>
  foreignPublishes: number
  foreignSubscriptions: number
  clientErrors: number
}

export interface Broker {
  /** The in-process bus on this broker, for co-located processor and gateway. */
  readonly bus: Bus
  readonly stats: BrokerStats
  listen(options: { host: string; port: number }): Promise<number>
  close(): Promise<void>
}

/**
 * The embedded MQTT broker: aedes with the device rules of CONTRACT.md §4 injected as hooks.
 * Connection limits, lockouts and clustering are the broker issue's (#3).
 */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  const { plant, logger } = options
  const policy = new DevicePolicy(plant, options.deviceSecret)
  const stats: BrokerStats = {
    connected: 0,
    connects: 0,
    refusals: { unknown_device: 0, bad_username: 0, bad_password: 0, missing_password: 0 },
    foreignPublishes: 0,
    foreignSubscriptions: 0,
    clientErrors: 0,
  }

  const aedes = await Aedes.createBroker({
    // MQTT-3.1.3-5 allows 23 characters; device ids of CONTRACT.md §1 go to 64.
    maxClientsIdLength: 64,
    // Device topics have 5 levels; CONTRACT.md §4 refuses more than 8.
    maxTopicLevels: 8,
    authenticate(client, username, password, done) {
      const verdict = policy.login(client.id, username, password ?? undefined)
      if (verdict.ok) return done(null, true)
      stats.refusals[verdict.reason]++
      logger.warn({ clientId: client.id, reason: verdict.reason }, 'device login refused')
      const error = new Error(verdict.reason) as AuthenticateError
      error.returnCode = verdict.returnCode
      done(error, false)
    },
    authorizePublish(client, packet, done) {
      // client is null for messages published by plantwatt itself (processor downlinks).
      if (client === null || policy.mayPublish(client.id, packet.topic)) return done(null)
      stats.foreignPublishes++
      logger.warn({ clientId: client.id, topic: packet.topic }, 'publish outside own topics: closing connection')
      done(new Error('publish not allowed'))
    },
    authorizeSubscribe(client, subscription, done) {
      if (policy.maySubscribe(client.id, subscription.topic)) return done(null, subscription)
      stats.foreignSubscriptions++
      logger.warn({ clientId: client.id, filter: subscription.topic }, 'subscription refused')
      // A null subscription makes aedes answer 0x80 for this filter and keep the connection.
      done(null, null)
    },
  })

  aedes.on('client', () => {
    stats.connects++
    stats.connected++
  })
  aedes.on('clientDisconnect', () => {
    stats.connected--
  })
  aedes.on('clientError', (client: Client, error: Error) => {
    stats.clientErrors++
    logger.debug({ clientId: client.id, err: error.message }, 'client error')
  })

  const bus = createAedesBus(aedes, (error) => logger.error({ err: error }, 'bus handler failed'))
  const servers: Server[] = []

  return {
    bus,
    stats,
    async listen({ host, port }) {
      const server = createServer((socket) => aedes.handle(socket))
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      return (server.address() as AddressInfo).port
    },
    async close() {
      const closing = servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
      await bus.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await Promise.all(closing)
    },
  }
}
