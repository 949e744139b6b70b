import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { type Bus, type BusHandler, callSafely, type PublishOptions, type Unsubscribe } from './bus.ts'

export interface MqttBusOptions {
  url: string
  clientId: string
  username?: string
  password?: string
  onError?: (error: unknown) => void
}

/** Matches an MQTT topic against a filter with `+` and `#` (MQTT 3.1.1 §4.7). */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/**
 * The bus as a client of a shared MQTT broker (aedes cluster, Mosquitto, EMQX…), for services
 * that run as separate processes. It connects with a persistent session so that QoS 1 messages
 * published while it reconnects are not lost.
 */
export async function createMqttBus(options: MqttBusOptions): Promise<Bus> {
  const clientOptions: IClientOptions = {
    clientId: options.clientId,
    username: options.username,
    password: options.password,
    protocolVersion: 4,
    clean: false,
    reconnectPeriod: 1000,
    resubscribe: true,
  }
  const client: MqttClient = await mqtt.connectAsync(options.url, clientOptions)
  const onError = options.onError ?? (() => {})
  client.on('error', onError)
  const handlers = new Map<string, Set<BusHandler>>()
  // The SUBACK each filter waits for, so that a second subscriber to a filter also resolves only
  // once the broker delivers it.
  const active = new Map<string, Promise<unknown>>()

  client.on('message', (topic, payload, packet) => {
    // plantwatt publishes nothing retained: a retained message handed over on subscribe is a stale
    // one somebody else parked (a device's reading would be ingested again at every start).
    if (packet.retain) return
    for (const [filter, set] of handlers) {
      if (!topicMatches(filter, topic)) continue
      for (const handler of set) callSafely(handler, topic, payload, onError)
    }
  })

  return {
    async publish(topic: string, payload: Buffer, publishOptions?: PublishOptions) {
      await client.publishAsync(topic, payload, { qos: publishOptions?.qos ?? 0 })
    },
    async subscribe(filter: string, handler: BusHandler): Promise<Unsubscribe> {
      let set = handlers.get(filter)
      if (!set) {
        set = new Set()
        handlers.set(filter, set)
        active.set(filter, client.subscribeAsync(filter, { qos: 1 }))
      }
      set.add(handler)
      await active.get(filter)
      return async () => {
        const current = handlers.get(filter)
        if (!current?.delete(handler) || current.size > 0) return
        handlers.delete(filter)
        active.delete(filter)
        if (client.connected) await client.unsubscribeAsync(filter)
      }
    },
    async close() {
      handlers.clear()
      await client.endAsync()
    },
  }
}
