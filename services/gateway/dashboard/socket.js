// One WebSocket to /ws (CONTRACT.md §5) that keeps itself open: it reconnects with exponential
// backoff and jitter (so a restarted gateway is not hit by every browser in the same second), at
// once after close code 1013 (the server dropped a slow client that must resume with `since`), and
// sends the subscriptions afresh on each connection, asking the page for them at that moment so
// the `since` of alerts and setpoints is the last sequence number seen. A browser that goes
// offline drops its socket at once, and one that comes back online reconnects at once.

const FIRST_DELAY_MS = 500
const MAX_DELAY_MS = 15_000
/** A connection that stayed up this long resets the backoff. */
const STABLE_MS = 10_000
/** CONTRACT.md §5: "closed with code 1013 so that the client resumes with since". */
const CLOSE_TRY_AGAIN = 1013
/**
 * The gateway takes a burst of 50 subscribe requests, then 10 a second (its WsLimits): send a
 * burst below that, then pace the rest a little slower than the refill. A request refused as
 * rate_limited anyway (another tab's traffic does not count, but a slow clock might) is sent
 * again later, a few times at most.
 */
const SUBSCRIBE_BURST = 40
const SUBSCRIBE_INTERVAL_MS = 120
const SUBSCRIBE_RETRIES = 3

export class Socket {
  /**
   * @param {object} options
   * @param {() => string} options.url
   * @param {() => object[]} options.subscriptions the subscribe requests to send on open, most
   *   important first (they are paced to the gateway's rate limit)
   * @param {(frame: object) => void} options.onFrame
   * @param {(state: 'connecting' | 'open' | 'waiting' | 'closed', detail?: string) => void} options.onState
   * @param {() => void} options.onRefused the upgrade failed before opening (a 401 looks like this)
   */
  constructor(options) {
    this.options = options
    this.ws = undefined
    this.timer = undefined
    this.failures = 0
    this.stopped = true
    this.onOnline = () => this.reconnectNow()
    this.onOffline = () => this.dropOffline()
    /** Subscribe requests not sent yet on this connection, in order, and retries per id. */
    this.queue = []
    this.requests = new Map()
    this.retries = new Map()
    this.pacer = undefined
  }

  start() {
    this.stopped = false
    window.addEventListener('online', this.onOnline)
    window.addEventListener('offline', this.onOffline)
    this.connect()
  }

  stop() {
    this.stopped = true
    window.removeEventListener('online', this.onOnline)
    window.removeEventListener('offline', this.onOffline)
    clearTimeout(this.timer)
    // Frames still in flight belong to the old site or token: drop them.
    this.abandon()
    this.options.onState('closed')
  }

  /**
   * The browser lost its network: the socket is taken for closed at once rather than when it says
   * so. Its close may not come for minutes (no packet says a cable was pulled), and Chromium holds
   * a socket's reads while offline, so a frame that arrives then keeps even a server's close from
   * the page. Retries go on as after any close (they fail fast while offline); `online` brings the
   * next one forward, and the subscriptions resume with `since`.
   */
  dropOffline() {
    if (this.stopped || !this.ws) return
    this.abandon()
    this.scheduleRetry(this.backoff(), 'offline')
  }

  /** Lets go of the current socket without waiting for its close event. */
  abandon() {
    this.resetQueue()
    const ws = this.ws
    this.ws = undefined
    if (ws) {
      ws.onmessage = null
      ws.onclose = null
      ws.close(1000)
    }
  }

  scheduleRetry(delay, reason) {
    const when = delay > 0 ? `retrying in ${Math.ceil(delay / 1000)} s` : 'resuming'
    this.options.onState('waiting', reason ? `${reason}, ${when}` : when)
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.connect(), delay)
  }

  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame))
  }

  reconnectNow() {
    if (this.stopped || this.ws) return
    clearTimeout(this.timer)
    this.connect()
  }

  connect() {
    this.options.onState('connecting')
    const ws = new WebSocket(this.options.url())
    this.ws = ws
    let openedAt = 0
    ws.onopen = () => {
      openedAt = Date.now()
      this.options.onState('open')
      this.queue = this.options.subscriptions()
      this.requests = new Map(this.queue.map((request) => [request.id, request]))
      for (let i = 0; i < SUBSCRIBE_BURST && this.queue.length > 0; i++) this.send(this.queue.shift())
      this.pace()
    }
    ws.onmessage = (event) => {
      let frame
      try {
        frame = JSON.parse(event.data)
      } catch {
        return
      }
      if (frame.type === 'error' && frame.code === 'rate_limited' && this.retry(frame.id)) return
      this.options.onFrame(frame)
    }
    ws.onclose = (event) => {
      if (this.ws !== ws) return
      this.ws = undefined
      this.resetQueue()
      if (this.stopped) return
      if (openedAt === 0) this.options.onRefused()
      if (this.stopped) return
      if (openedAt && Date.now() - openedAt >= STABLE_MS) this.failures = 0
      this.scheduleRetry(event.code === CLOSE_TRY_AGAIN ? 0 : this.backoff())
    }
  }

  pace() {
    if (this.pacer || this.queue.length === 0) return
    this.pacer = setInterval(() => {
      if (this.queue.length > 0) this.send(this.queue.shift())
      if (this.queue.length === 0) {
        clearInterval(this.pacer)
        this.pacer = undefined
      }
    }, SUBSCRIBE_INTERVAL_MS)
  }

  /** Puts a refused subscribe request back in the queue; false once it has had its retries. */
  retry(id) {
    const request = this.requests.get(id)
    const count = this.retries.get(id) ?? 0
    if (!request || count >= SUBSCRIBE_RETRIES) return false
    this.retries.set(id, count + 1)
    this.queue.push(request)
    this.pace()
    return true
  }

  resetQueue() {
    clearInterval(this.pacer)
    this.pacer = undefined
    this.queue = []
    this.retries.clear()
  }

  backoff() {
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures)
    this.failures++
    return ceiling / 2 + Math.random() * (ceiling / 2)
  }
}
