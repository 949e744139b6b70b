import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { type Bus, type BusHandler, callSafely, type PublishOptions, type Unsubscribe } from './bus.ts'

export interface MqttBusOptions {
  url: string
  clientId: string
  username?: string
  password?: string
  /**
   * A clean session: nothing is kept for this client while it is away. Default false: a persistent
   * session, so QoS 1 messages published while it reconnects are not lost (give a stable client id).
   */
  clean?: boolean
  onError?: (error: unknown) => void
  /** Messages held at most while they wait for their first handler (see below); default 100,000. */
  maxEarlyMessages?: number
}

/** A message that arrived before any handler for it was subscribed. */
interface EarlyMessage {
  topic: string
  payload: Buffer
}

/** Connects, with listeners attached before the first packet can arrive; rejects on a refusal. */
function connectClient(url: string, clientOptions: IClientOptions, attach: (client: MqttClient) => void) {
  return new Promise<MqttClient>((resolve, reject) => {
    const client = mqtt.connect(url, clientOptions)
    attach(client)
    const settle = () => {
      client.off('connect', onConnect)
      client.off('error', onError)
    }
    const onConnect = () => {
      settle()
      resolve(client)
    }
    const onError = (error: Error) => {
      settle()
      client.end(true)
      reject(error)
    }
    client.once('connect', onConnect)
    client.once('error', onError)
  })
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
 * that run as separate processes. By default it connects with a persistent session so that QoS 1
 * messages published while it reconnects are not lost.
 */
export async function createMqttBus(options: MqttBusOptions): Promise<Bus> {
  const clientOptions: IClientOptions = {
    clientId: options.clientId,
    username: options.username,
    password: options.password,
    protocolVersion: 4,
    clean: options.clean ?? false,
    reconnectPeriod: 1000,
    resubscribe: true,
  }
  const onError = options.onError ?? (() => {})
  const handlers = new Map<string, Set<BusHandler>>()
  // The SUBACK each filter waits for, so that a second subscriber to a filter also resolves only
  // once the broker delivers it.
  const active = new Map<string, Promise<unknown>>()
  // A persistent session resumes at the CONNACK: the broker sends what it queued for this client
  // (a processor's readings sent while it restarted) before the service has subscribed its
  // handlers. Those messages wait here, in order, for the first handler whose filter matches
  // them, rather than being dropped unread (issue 12 finding 15). Bounded: past the limit further
  // ones are dropped, and reported.
  const early: EarlyMessage[] = []
  const maxEarly = options.maxEarlyMessages ?? 100_000
  let earlyDropped = 0

  const client = await connectClient(options.url, clientOptions, (client) => {
    client.on('message', (topic, payload, packet) => {
      // plantwatt publishes nothing retained: a retained message handed over on subscribe is a stale
      // one somebody else parked (a device's reading would be ingested again at every start).
      if (packet.retain) return
      let handled = false
      for (const [filter, set] of handlers) {
        if (!topicMatches(filter, topic)) continue
        handled = true
        for (const handler of set) callSafely(handler, topic, payload, onError)
      }
      if (handled || clientOptions.clean) return
      if (early.length < maxEarly) early.push({ topic, payload })
      else if (earlyDropped++ === 0) onError(new Error(`more than ${maxEarly} messages arrived before their handlers`))
    })
  })
  client.on('error', onError)

  /** Hands `handler` the early messages its filter matches, oldest first, and forgets them. */
  const deliverEarly = (filter: string, handler: BusHandler) => {
    if (early.length === 0) return
    const kept: EarlyMessage[] = []
    for (const message of early) {
      if (topicMatches(filter, message.topic)) callSafely(handler, message.topic, message.payload, onError)
      else kept.push(message)
    }
    early.length = 0
    for (const message of kept) early.push(message)
  }

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
      deliverEarly(filter, handler)
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
      early.length = 0
      await client.endAsync()
    },
  }
}
