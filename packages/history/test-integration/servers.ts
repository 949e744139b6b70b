import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { gunzipSync } from 'node:zlib'

export const VICTORIA_METRICS = '/usr/bin/victoria-metrics'

/** A free loopback port: listen on 0, read it, close. */
export async function freePort(): Promise<number> {
  const server = createNetServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A VictoriaMetrics process on a given port and data path (restartable on both, which is what the
 * kill tests need). Fails, not skips, when the binary is missing (DESIGN.md: tests that need a
 * component fail without it; `bash test/install-deps.sh` installs it).
 */
export class Victoria {
  readonly port: number
  readonly dataPath: string
  private child: ChildProcess | null = null
  private output = ''

  constructor(port: number, dataPath: string) {
    this.port = port
    this.dataPath = dataPath
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    if (!existsSync(VICTORIA_METRICS)) {
      throw new Error(`${VICTORIA_METRICS} is missing: run bash test/install-deps.sh (Debian package victoria-metrics)`)
    }
    const child = spawn(
      VICTORIA_METRICS,
      [
        `-httpListenAddr=127.0.0.1:${this.port}`,
        `-storageDataPath=${this.dataPath}`,
        '-retentionPeriod=100y',
        '-loggerLevel=ERROR',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.child = child
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-4000)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`victoria-metrics exited (${code}): ${this.output}`))),
    )
    exited.catch(() => {})
    await Promise.race([until(() => this.healthy(), 15_000, 'victoria-metrics /health'), exited])
  }

  async healthy(): Promise<boolean> {
    try {
      const response = await fetch(`${this.url}/health`)
      return response.ok
    } catch {
      return false
    }
  }

  /** Stops the process with `signal` and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (!child) return
    this.child = null
    if (child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill(signal)
    await gone
  }

  /** Makes every accepted sample visible to export. */
  async forceFlush(): Promise<void> {
    const response = await fetch(`${this.url}/internal/force_flush`)
    if (!response.ok) throw new Error(`force_flush: ${response.status}`)
  }

  /** Raw samples of the series matching `selector`, via /api/v1/export (duplicates included). */
  async export(
    selector: string,
  ): Promise<{ metric: Record<string, string>; values: number[]; timestamps: number[] }[]> {
    await this.forceFlush()
    const query = new URLSearchParams({ 'match[]': selector, start: '0' })
    const response = await fetch(`${this.url}/api/v1/export?${query}`)
    if (!response.ok) throw new Error(`export: ${response.status} ${await response.text()}`)
    const text = await response.text()
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line))
  }
}

/** Counts samples per (series, timestamp): any count above 1 is a point written twice. */
export function countSamples(series: { metric: Record<string, string>; timestamps: number[] }[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const s of series) {
    const labels = Object.keys(s.metric)
      .sort()
      .map((k) => `${k}=${s.metric[k]}`)
      .join(',')
    for (const t of s.timestamps) {
      const key = `${labels}@${t}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
  }
  return counts
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function linesOf(req: IncomingMessage, raw: Buffer): string[] {
  const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw
  return body
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
}

export interface RecordedRequest {
  lines: string[]
  /** HTTP status relayed to the writer, or null when the upstream failed and the socket was cut. */
  status: number | null
  at: number
}

/**
 * A recording HTTP proxy: forwards each request to `target` as is and records its lines and the
 * answer. When the upstream fails (connection refused or reset: the server was killed), it cuts the
 * writer's socket, so the writer sees what it would see without the proxy: no answer.
 */
export class RecordingProxy {
  readonly requests: RecordedRequest[] = []
  private server: Server | null = null
  private readonly targetPort: number

  constructor(targetPort: number) {
    this.targetPort = targetPort
  }

  get url(): string {
    const { port } = this.server!.address() as { port: number }
    return `http://127.0.0.1:${port}`
  }

  /** Lines the upstream acknowledged (2xx), in the order the acknowledgements were relayed. */
  acknowledged(): string[] {
    const out: string[] = []
    for (const r of this.requests) if (r.status !== null && r.status >= 200 && r.status < 300) out.push(...r.lines)
    return out
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.forward(req, res))
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
  }

  async stop(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = null
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req)
    const record: RecordedRequest = { lines: linesOf(req, raw), status: null, at: Date.now() }
    const upstream = request(
      {
        host: '127.0.0.1',
        port: this.targetPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: false,
      },
      async (answer) => {
        const body = await readBody(answer)
        record.status = answer.statusCode ?? null
        record.at = Date.now()
        this.requests.push(record)
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        res.end(body)
      },
    )
    upstream.on('error', () => {
      record.at = Date.now()
      this.requests.push(record)
      res.socket?.destroy()
    })
    upstream.end(raw)
  }
}

/**
 * A write endpoint whose answers a test decides: `answer(lines)` returns a status (and headers).
 * Lines of 2xx requests are kept in order. Handles gzip bodies like InfluxDB does.
 */
export class StubServer {
  readonly received: string[] = []
  readonly requests: {
    lines: string[]
    status: number
    at: number
    url: string
    headers: IncomingMessage['headers']
  }[] = []
  /** Decides the answer; 'hang' never answers (the request stays open until the client gives up). */
  answer: (lines: string[]) => number | 'hang' | { status: number; headers?: Record<string, string>; body?: string } =
    () => 204
  private server: Server | null = null

  get url(): string {
    const { port } = this.server!.address() as { port: number }
    return `http://127.0.0.1:${port}`
  }

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const lines = linesOf(req, await readBody(req))
      const a = this.answer(lines)
      if (a === 'hang') {
        this.requests.push({ lines, status: 0, at: Date.now(), url: req.url ?? '', headers: req.headers })
        return
      }
      const { status, headers, body } = typeof a === 'number' ? { status: a, headers: {}, body: '' } : a
      this.requests.push({ lines, status, at: Date.now(), url: req.url ?? '', headers: req.headers })
      if (status >= 200 && status < 300) this.received.push(...lines)
      const text = body ?? (status >= 300 ? JSON.stringify({ code: 'invalid', message: `stub says ${status}` }) : '')
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(status === 204 ? undefined : text)
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
  }

  async stop(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = null
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
