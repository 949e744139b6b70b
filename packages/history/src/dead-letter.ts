import { closeSync, openSync, renameSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Lines the server refused for good (400/422/413 for that line alone), kept for a person to read
 * and, after a fix, to re-send: `dead-letter.ndjson` in the writer's directory, one JSON object per
 * line: `{"at": <epoch ms>, "status": 400, "reason": "bad_request", "message": "<server text>", "line": "<line protocol>"}`.
 * Bounded: past `maxBytes` the file is rotated to `dead-letter.1.ndjson` (the previous one is
 * replaced), so at most twice the bound is kept. Refusals are counted in the stats either way.
 */
export const DEAD_LETTER_FILE = 'dead-letter.ndjson'
export const DEAD_LETTER_OLD_FILE = 'dead-letter.1.ndjson'

export interface DeadLetterRecord {
  at: number
  status: number
  reason: string
  message: string
  line: string
}

export class DeadLetter {
  private readonly path: string
  private readonly oldPath: string
  private readonly maxBytes: number
  private fd: number | null = null
  private bytes = 0

  constructor(directory: string, maxBytes: number) {
    this.path = join(directory, DEAD_LETTER_FILE)
    this.oldPath = join(directory, DEAD_LETTER_OLD_FILE)
    this.maxBytes = maxBytes
  }

  add(record: DeadLetterRecord): void {
    const data = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8')
    if (this.fd === null) this.open()
    if (this.bytes > 0 && this.bytes + data.length > this.maxBytes) {
      this.close()
      renameSync(this.path, this.oldPath)
      this.open()
    }
    let offset = 0
    while (offset < data.length) offset += writeSync(this.fd!, data, offset, data.length - offset)
    this.bytes += data.length
  }

  close(): void {
    if (this.fd === null) return
    closeSync(this.fd)
    this.fd = null
  }

  private open(): void {
    this.fd = openSync(this.path, 'a', 0o600)
    this.bytes = statSync(this.path).size
  }
}
