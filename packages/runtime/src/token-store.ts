import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { join } from 'node:path'
import { readJsonFile, writeFileAtomic } from './files.ts'
import { SerialQueue } from './serial-queue.ts'

// Bearer tokens of CONTRACT.md §4: roles viewer < operator < admin, optionally limited to
// scopes. Only SHA-256 hashes are stored; the clear token is shown once, when it is issued.

export type Role = 'viewer' | 'operator' | 'admin'
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin']

export interface TokenRecord {
  id: string
  name: string
  role: Role
  /** Scopes the token is limited to; empty means the whole plant. */
  scopes: string[]
  createdAt: string
  /** Hex SHA-256 of the token. */
  hash: string
}

export type PublicTokenRecord = Omit<TokenRecord, 'hash'>

const BOOTSTRAP_ID = 'bootstrap-admin'

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed)
}

export class TokenStore {
  private records: TokenRecord[] = []
  private hashes: Buffer[] = []
  /** Every change is computed from the records as they stand inside this queue, then saved. */
  private readonly changes = new SerialQueue()

  private constructor(private readonly file: string) {}

  static async open(dataDir: string): Promise<TokenStore> {
    const store = new TokenStore(join(dataDir, 'tokens.json'))
    const stored = await readJsonFile<{ tokens: TokenRecord[] }>(store.file)
    store.replace(stored?.tokens ?? [])
    return store
  }

  /**
   * The token whose hash matches, compared in constant time against every stored hash (no early
   * exit), so response timing tells nothing about how close a guess came.
   */
  verify(token: string): TokenRecord | undefined {
    const candidate = hashToken(token)
    let found: TokenRecord | undefined
    for (let i = 0; i < this.hashes.length; i++) {
      if (timingSafeEqual(candidate, this.hashes[i]!)) found = this.records[i]
    }
    return found
  }

  /** Whether a token with this id is (still) stored: false once it is revoked. */
  has(id: string): boolean {
    return this.records.some((record) => record.id === id)
  }

  list(): PublicTokenRecord[] {
    return this.records.map(({ hash: _hash, ...rest }) => rest)
  }

  async issue(request: {
    name: string
    role: Role
    scopes?: string[]
  }): Promise<{ token: string; record: TokenRecord }> {
    const token = `pwt_${randomBytes(24).toString('base64url')}`
    const record: TokenRecord = {
      id: randomBytes(8).toString('hex'),
      name: request.name,
      role: request.role,
      scopes: request.scopes ?? [],
      createdAt: new Date().toISOString(),
      hash: hashToken(token).toString('hex'),
    }
    await this.change((records) => [...records, record])
    return { token, record }
  }

  async revoke(id: string): Promise<boolean> {
    let found = false
    await this.change((records) => {
      const remaining = records.filter((record) => record.id !== id)
      found = remaining.length < records.length
      return found ? remaining : undefined
    })
    return found
  }

  /**
   * The first admin token (CONTRACT.md §4): `PLANTWATT_ADMIN_TOKEN` when set (replacing an
   * earlier bootstrap token), else one generated at first start. Returns the generated token so
   * that the caller prints it once; undefined when nothing new was generated.
   */
  async ensureBootstrapAdmin(fromEnv: string | undefined): Promise<string | undefined> {
    if (fromEnv) {
      const hash = hashToken(fromEnv).toString('hex')
      await this.change((records) => {
        if (records.find((record) => record.id === BOOTSTRAP_ID)?.hash === hash) return undefined
        return [...records.filter((r) => r.id !== BOOTSTRAP_ID), this.bootstrapRecord(hash)]
      })
      return undefined
    }
    const token = `pwt_${randomBytes(24).toString('base64url')}`
    let generated = false
    await this.change((records) => {
      if (records.some((record) => record.role === 'admin')) return undefined
      generated = true
      return [...records, this.bootstrapRecord(hashToken(token).toString('hex'))]
    })
    return generated ? token : undefined
  }

  private bootstrapRecord(hash: string): TokenRecord {
    return {
      id: BOOTSTRAP_ID,
      name: 'bootstrap admin',
      role: 'admin',
      scopes: [],
      createdAt: new Date().toISOString(),
      hash,
    }
  }

  /**
   * Applies one change against the records as they stand once every earlier change is saved (so
   * two concurrent issues, or a revoke beside an issue, never overwrite each other), then saves
   * it; the new records are in force only once they are on disk. `next` returns undefined for
   * "nothing to change".
   */
  private change(next: (records: readonly TokenRecord[]) => TokenRecord[] | undefined): Promise<void> {
    return this.changes.run(async () => {
      const records = next(this.records)
      if (records === undefined) return
      await writeFileAtomic(this.file, `${JSON.stringify({ tokens: records }, null, 2)}\n`)
      this.replace(records)
    })
  }

  private replace(records: TokenRecord[]): void {
    this.records = records
    this.hashes = records.map((record) => Buffer.from(record.hash, 'hex'))
  }
}
