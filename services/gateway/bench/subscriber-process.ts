// WebSocket clients of the gateway benchmark, in a process of their own (live-subscribers.ts
// starts one or more). Answers over IPC (ipc.ts):
//   connect {url, clients: [{scope, level}], concurrency, stalled}
//       opens the connections, at most `concurrency` waiting for their upgrade at once. A live
//       client subscribes to `live` for its scope. A stalled client subscribes to `live` for its
//       scope and to `alerts` with since: 0, then stops reading its socket, as a frozen browser
//       tab or a wedged integration would, so that the gateway's buffers for it fill.
//   measure {}  starts a window: frame delays from now on, per scope level
//   segment {}  the delays since the previous segment, all levels (encoded histogram)
//   collect {}  the window's histograms (HdrHistogram, encoded) and counters
//   resume {targetSeq, timeoutMs}  stalled clients read again: how each one ends (closed with
//       which code, or caught up with the alerts up to targetSeq) and whether its alerts came in order

import WebSocket from 'ws'
// The fleet simulator's latency histograms (HdrHistogram, mergeable across processes): a tool
// reaching into the simulator by path, as the broker's benchmark does.
import {
  createLatencyHistogram,
  encodeLatency,
  type LatencyHistogram,
  recordMs,
} from '../../../simulators/fleet/src/sessions/latency.ts'
import { serveRequests } from './ipc.ts'

export interface ClientSpec {
  scope: string
  level: string
}

export interface ConnectResult {
  connected: number
  failed: number
  /** First connection started → last one open, ms. */
  connectMs: number
  /** Each connection's upgrade, ms. */
  openMs: { p50: number; p99: number; max: number }
  errors: string[]
}

export interface WindowResult {
  windowMs: number
  /** Encoded delay histograms by scope level. */
  histograms: Record<string, string>
  frames: number
  /** Snapshots and other frames that are not part of the delay figures. */
  otherFrames: number
  /** Subscriptions that got no live frame in the window. */
  silent: number
  /** Fewest and most frames one subscription got in the window. */
  perSubscription: { min: number; max: number }
  closed: Record<string, number>
  cpuUs: number
}

export interface ResumeResult {
  closed: Record<string, number>
  caughtUp: number
  neither: number
  alertsReceived: number
  gapFrames: number
  /** Alerts that did not follow the previous one (or its gap) by one. */
  outOfOrder: number
  /** Frames a stalled client read before it was resumed: 0, or the stall did not hold. */
  framesReadWhileStalled: number
}

interface Client {
  spec: ClientSpec
  socket: WebSocket
  frames: number
  closeCode: number | undefined
  lastSeq: number
  outOfOrder: number
  stalled: boolean
}

const clients: Client[] = []
let measuring = false
let windowStart = 0
let windowCpu = process.cpuUsage()
let histograms = new Map<string, LatencyHistogram>()
/** All levels since the last `segment` request: how the delay moves within the window. */
const segmentHistogram = createLatencyHistogram()
let otherFrames = 0
let alertsReceived = 0
let gapFrames = 0
let framesReadWhileStalled = 0

function histogramFor(level: string): LatencyHistogram {
  let histogram = histograms.get(level)
  if (!histogram) {
    histogram = createLatencyHistogram()
    histograms.set(level, histogram)
  }
  return histogram
}

function onFrame(client: Client, text: string): void {
  const receivedAt = Date.now()
  // A check on the benchmark itself: a stalled client must not read.
  if (client.stalled) framesReadWhileStalled++
  const frame = JSON.parse(text) as { type: string; sub?: string; at?: number; seq?: number; to?: number }
  if (frame.type === 'alert') {
    alertsReceived++
    if (client.lastSeq !== 0 && frame.seq !== client.lastSeq + 1) client.outOfOrder++
    client.lastSeq = frame.seq!
    return
  }
  if (frame.type === 'gap') {
    gapFrames++
    client.lastSeq = frame.to!
    return
  }
  if (!measuring) return
  if (frame.type === 'live' && typeof frame.at === 'number') {
    // Same machine, same clock: `at` is the feeder's Date.now() when it sent the figures.
    recordMs(histogramFor(client.spec.level), receivedAt - frame.at)
    recordMs(segmentHistogram, receivedAt - frame.at)
    client.frames++
  } else {
    otherFrames++
  }
}

function open(url: string, spec: ClientSpec, stalled: boolean): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false })
    const client: Client = {
      spec,
      socket,
      frames: 0,
      closeCode: undefined,
      lastSeq: 0,
      outOfOrder: 0,
      stalled: false,
    }
    socket.on('message', (data, isBinary) => {
      if (!isBinary) onFrame(client, data.toString())
    })
    // Before the upgrade an error fails the connect; after it, 'close' follows and is counted.
    socket.on('error', (error) => reject(error))
    socket.on('close', (code) => {
      client.closeCode = code
    })
    socket.once('open', () => {
      clients.push(client)
      socket.send(JSON.stringify({ op: 'subscribe', id: 'l', channel: 'live', scope: spec.scope }))
      if (stalled) {
        socket.send(JSON.stringify({ op: 'subscribe', id: 'a', channel: 'alerts', scope: spec.scope, since: 0 }))
        // Stop reading: the kernel's buffers fill, then the gateway's (CONTRACT.md §5, 1013). ws's
        // own pause(), not its socket's: ws would resume a socket paused behind its back.
        socket.pause()
        client.stalled = true
      }
      resolve(performance.now() - started)
    })
  })
}

async function connect(request: {
  url: string
  clients: ClientSpec[]
  concurrency: number
  stalled: boolean
}): Promise<ConnectResult> {
  const started = performance.now()
  const openMs: number[] = []
  const errors = new Map<string, number>()
  let next = 0
  let failed = 0
  const worker = async () => {
    while (next < request.clients.length) {
      const spec = request.clients[next++]!
      try {
        openMs.push(await open(request.url, spec, request.stalled))
      } catch (error) {
        failed++
        const message = error instanceof Error ? error.message : String(error)
        errors.set(message, (errors.get(message) ?? 0) + 1)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(request.concurrency, request.clients.length) }, worker))
  openMs.sort((a, b) => a - b)
  const at = (q: number) =>
    Math.round((openMs[Math.min(openMs.length - 1, Math.floor(q * openMs.length))] ?? 0) * 10) / 10
  return {
    connected: openMs.length,
    failed,
    connectMs: Math.round(performance.now() - started),
    openMs: { p50: at(0.5), p99: at(0.99), max: at(1) },
    errors: [...errors].map(([message, count]) => `${count}× ${message}`),
  }
}

function measure(): void {
  histograms = new Map()
  segmentHistogram.reset()
  otherFrames = 0
  for (const client of clients) client.frames = 0
  windowStart = performance.now()
  windowCpu = process.cpuUsage()
  measuring = true
}

/** The delays since the previous segment (encoded), and a fresh segment. */
function segment(): string {
  const encoded = encodeLatency(segmentHistogram)
  segmentHistogram.reset()
  return encoded
}

function collect(): WindowResult {
  measuring = false
  const cpu = process.cpuUsage(windowCpu)
  let frames = 0
  let silent = 0
  let min = Number.POSITIVE_INFINITY
  let max = 0
  const closed: Record<string, number> = {}
  for (const client of clients) {
    frames += client.frames
    if (client.frames === 0) silent++
    min = Math.min(min, client.frames)
    max = Math.max(max, client.frames)
    if (client.closeCode !== undefined) closed[client.closeCode] = (closed[client.closeCode] ?? 0) + 1
  }
  const encoded: Record<string, string> = {}
  for (const [level, histogram] of histograms) encoded[level] = encodeLatency(histogram)
  return {
    windowMs: Math.round(performance.now() - windowStart),
    histograms: encoded,
    frames,
    otherFrames,
    silent,
    perSubscription: { min: clients.length === 0 ? 0 : min, max },
    closed,
    cpuUs: cpu.user + cpu.system,
  }
}

async function resume(request: { targetSeq: number; timeoutMs: number }): Promise<ResumeResult> {
  for (const client of clients) {
    client.stalled = false
    client.socket.resume()
  }
  const done = (client: Client) => client.closeCode !== undefined || client.lastSeq >= request.targetSeq
  const deadline = Date.now() + request.timeoutMs
  while (Date.now() < deadline && !clients.every(done)) await new Promise((resolve) => setTimeout(resolve, 100))
  const closed: Record<string, number> = {}
  let caughtUp = 0
  let neither = 0
  let outOfOrder = 0
  for (const client of clients) {
    outOfOrder += client.outOfOrder
    if (client.closeCode !== undefined) closed[client.closeCode] = (closed[client.closeCode] ?? 0) + 1
    else if (client.lastSeq >= request.targetSeq) caughtUp++
    else neither++
  }
  return { closed, caughtUp, neither, alertsReceived, gapFrames, outOfOrder, framesReadWhileStalled }
}

serveRequests({ connect, measure, segment, collect, resume }, () => {
  for (const client of clients) client.socket.terminate()
  process.exit(0)
})
