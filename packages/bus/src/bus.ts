// The one seam between broker, processor and gateway (DESIGN.md "Shape"): publish and subscribe
// of contract messages on MQTT topics. In one process it runs on the embedded aedes broker's own
// emitter; scaled out, it is an MQTT client of the shared broker. Both pass one test suite.

export type BusHandler = (topic: string, payload: Buffer) => void

export interface PublishOptions {
  qos?: 0 | 1
}

export interface Bus {
  publish(topic: string, payload: Buffer, options?: PublishOptions): Promise<void>
  /** Subscribes to an MQTT topic filter (`+` and `#` wildcards); resolves once active. */
  subscribe(filter: string, handler: BusHandler): Promise<Unsubscribe>
  close(): Promise<void>
}

export type Unsubscribe = () => Promise<void>

/**
 * Calls a handler and keeps its failure inside: one faulty consumer must not stop the bus or
 * the other consumers (STYLE.md, zigbee2mqtt's event bus). The error goes to `onError`.
 */
export function callSafely(handler: BusHandler, topic: string, payload: Buffer, onError: (error: unknown) => void) {
  try {
    handler(topic, payload)
  } catch (error) {
    onError(error)
  }
}
