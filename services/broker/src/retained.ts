// Retained messages under `sites/#` (issue 12 finding 14). plantwatt publishes none — a reading
// is consumed when it arrives and a command is queued per session — so any there were parked by
// a device (before devices' retain flags were cleared), and would be replayed to every subscriber
// at every start: a retained `down` command is delivered again on each SUBSCRIBE.

/** The part of an aedes persistence the purge needs (aedes-persistence 11's async API). */
export interface RetainedStore {
  createRetainedStream(pattern: string): AsyncIterable<{ topic: string }>
  storeRetained(packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: 0; retain: true }): Promise<void>
}

/**
 * Deletes every retained message matching `pattern` (an empty retained payload deletes, MQTT
 * 3.1.1 §3.3.1.3), straight in the store: nothing is published, so no subscriber anywhere in a
 * cluster sees an empty message. Returns the topics it deleted.
 */
export async function purgeRetained(store: RetainedStore, pattern: string): Promise<string[]> {
  const topics: string[] = []
  for await (const packet of store.createRetainedStream(pattern)) topics.push(packet.topic)
  for (const topic of topics) {
    await store.storeRetained({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true })
  }
  return topics
}
