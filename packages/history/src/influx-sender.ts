import { InfluxDB, type Transport } from '@influxdata/influxdb-client'
import { classifyError, OK, type SendOutcome } from './retry-policy.ts'

/**
 * One batch → one `POST /api/v2/write` through the client's transport, and its outcome.
 *
 * Why the transport and not `WriteApi`: WriteApi has its own line buffer, flush timer and retry
 * buffer (32,000 lines by default, dropped with only a log line when full), retries with its own
 * reading of `Retry-After`, and reports a failure through a callback after it has already given
 * up. Even with `maxRetries: 0` it decides on its own when a batch is sent. Calling the write
 * endpoint directly gives exactly one request per batch, at most one in flight, and its answer in
 * hand, which is what lets the spool move its cursor only past acknowledged lines, in order. The
 * client still provides the HTTP plumbing: auth header, gzip above a threshold, keep-alive,
 * proxy support and error parsing.
 */
export interface LineSender {
  send(body: string): Promise<SendOutcome>
}

export interface InfluxSenderOptions {
  url: string
  token: string | undefined
  org: string
  bucket: string
  requestTimeoutMs: number
  gzipThreshold: number
  now: () => number
}

export class InfluxLineSender implements LineSender {
  private readonly transport: Transport
  private readonly path: string
  private readonly options: InfluxSenderOptions
  private readonly headers = { 'content-type': 'text/plain; charset=utf-8', accept: 'application/json' }

  constructor(options: InfluxSenderOptions) {
    this.options = options
    // The client's socket timeout only reports; the abort below is what frees a hung request.
    this.transport = new InfluxDB({
      url: options.url,
      token: options.token,
      timeout: options.requestTimeoutMs + 1000,
    }).transport
    const query = new URLSearchParams({ org: options.org, bucket: options.bucket, precision: 'ms' })
    this.path = `/api/v2/write?${query}`
  }

  async send(body: string): Promise<SendOutcome> {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), this.options.requestTimeoutMs)
    try {
      await this.transport.request(this.path, body, {
        method: 'POST',
        headers: this.headers,
        gzipThreshold: this.options.gzipThreshold,
        signal: controller.signal,
      })
      return OK
    } catch (error) {
      // Abort also destroys a request the client gave up on, so no socket is left hanging.
      controller.abort()
      return classifyError(error, this.options.now())
    } finally {
      clearTimeout(timer)
    }
  }
}
