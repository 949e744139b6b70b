import pino, { type Logger, type LoggerOptions } from 'pino'

export type { Logger }

/**
 * pino NDJSON on stdout (CONTRACT.md §8). Secrets never reach a log call, and the redaction
 * list is a second fence for the header that carries tokens.
 */
export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? process.env.PLANTWATT_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    redact: { paths: ['req.headers.authorization', 'password', 'token'], censor: '[redacted]' },
  }
  return options.destination ? pino(config, options.destination) : pino(config)
}
