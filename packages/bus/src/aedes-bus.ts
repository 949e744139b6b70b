import { type Bus, type BusHandler, callSafely, type PublishOptions, type Unsubscribe } from './bus.ts'

/** The part of an aedes instance the in-process bus uses (kept structural: no aedes import here). */
export interface AedesLike {
  publish(packet: AedesPublishPacket, callback: (error?: Error | null) => void): void
  subscribe(topic: string, handler: AedesDeliver, done: () => void): void
  unsubscribe(topic: string, handler: AedesDeliver, done: () => void): void
}

export interface AedesPublishPacket {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  dup: boolean
}

type AedesDeliver = (packet: { topic: string; payload: Buffer | string }, callback: () => void) => void

/**
 * The in-process bus: messages go through the embedded broker's publish path (so a downlink to
 * a sleeping device is queued in its persistent session) and handlers sit on its emitter.
 */
export function createAedesBus(broker: AedesLike, onError: (error: unknown) => void = () => {}): Bus {
  const subscriptions = new Set<{ filter: string; deliver: AedesDeliver }>()
  return {
    publish(topic: string, payload: Buffer, options?: PublishOptions) {
      return new Promise<void>((resolve, reject) => {
        const packet: AedesPublishPacket = {
          cmd: 'publish',
          topic,
          payload,
          qos: options?.qos ?? 0,
          retain: false,
          dup: false,
        }
        broker.publish(packet, (error) => (error ? reject(error) : resolve()))
      })
    },
    subscribe(filter: string, handler: BusHandler) {
      // aedes waits for each handler's callback before delivering further: call it at once,
      // the handler's work is synchronous.
      const deliver: AedesDeliver = (packet, callback) => {
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
        callSafely(handler, packet.topic, payload, onError)
        callback()
      }
      const entry = { filter, deliver }
      subscriptions.add(entry)
      return new Promise<Unsubscribe>((resolve) => {
        broker.subscribe(filter, deliver, () =>
          resolve(
            () =>
              new Promise<void>((done) => {
                if (!subscriptions.delete(entry)) return done()
                broker.unsubscribe(filter, deliver, done)
              }),
          ),
        )
      })
    },
    async close() {
      const pending = [...subscriptions].map(
        (entry) => new Promise<void>((done) => broker.unsubscribe(entry.filter, entry.deliver, done)),
      )
      subscriptions.clear()
      await Promise.all(pending)
    },
  }
}
