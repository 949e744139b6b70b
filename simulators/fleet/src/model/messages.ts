// Outgoing messages and the queue that orders them: by send time, then device id, then the order
// the device produced them. Messages due later than the current horizon (latency, retransmissions)
// wait in a binary heap.

export interface OutgoingMessage {
  deviceId: string
  site: string
  kind: 'up' | 'ack'
  /** Simulated epoch seconds when the device transmits it (≥ the true times of the readings inside). */
  sendAtS: number
  /** SenML JSON for `up`, the ack JSON of CONTRACT.md §3 for `ack`. Shared by duplicates: do not mutate. */
  payload: Buffer
}

export class SimMessage implements OutgoingMessage {
  readonly deviceId: string
  readonly site: string
  readonly kind: 'up' | 'ack'
  readonly sendAtS: number
  readonly payload: Buffer
  readonly #ms: number
  readonly #rank: number
  readonly #seq: number

  constructor(
    deviceId: string,
    site: string,
    kind: 'up' | 'ack',
    sendMs: number,
    payload: Buffer,
    rank: number,
    seq: number,
  ) {
    this.deviceId = deviceId
    this.site = site
    this.kind = kind
    this.sendAtS = sendMs / 1000
    this.payload = payload
    this.#ms = sendMs
    this.#rank = rank
    this.#seq = seq
  }

  get sendMs(): number {
    return this.#ms
  }

  static compare(a: SimMessage, b: SimMessage): number {
    return a.#ms - b.#ms || a.#rank - b.#rank || a.#seq - b.#seq
  }
}

export class MessageHeap {
  private readonly items: SimMessage[] = []

  get size(): number {
    return this.items.length
  }

  peek(): SimMessage | undefined {
    return this.items[0]
  }

  push(item: SimMessage): void {
    const items = this.items
    let i = items.length
    items.push(item)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (SimMessage.compare(items[parent]!, item) <= 0) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = item
  }

  pop(): SimMessage | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    const n = items.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && SimMessage.compare(items[r]!, items[l]!) < 0 ? r : l
      if (SimMessage.compare(items[c]!, last) >= 0) break
      items[i] = items[c]!
      i = c
    }
    items[i] = last
    return top
  }
}
