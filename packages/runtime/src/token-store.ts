import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { join } from 'node:path'
import { readJsonFile, writeFileAtomic } from './files.ts'

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
    await this.save([...this.records, record])
    return { token, record }
  }

  async revoke(id: string): Promise<boolean> {
    const remaining = this.records.filter((record) => record.id !== id)
    if (remaining.length === this.records.length) return false
    await this.save(remaining)
    return true
  }

  /**
   * The first admin token (CONTRACT.md §4): `PLANTWATT_ADMIN_TOKEN` when set (replacing an
   * earlier bootstrap token), else one generated at first start. Returns the generated token so
   * that the caller prints it once; undefined when nothing new was generated.
   */
  async ensureBootstrapAdmin(fromEnv: string | undefined): Promise<string | undefined> {
    const existing = this.records.find((record) => record.id === BOOTSTRAP_ID)
    if (fromEnv) {
      const hash = hashToken(fromEnv).toString('hex')
      if (existing?.hash === hash) return undefined
      await this.save([...this.records.filter((r) => r.id !== BOOTSTRAP_ID), this.bootstrapRecord(hash)])
      return undefined
    }
    if (this.records.some((record) => record.role === 'admin')) return undefined
    const token = `pwt_${randomBytes(24).toString('base64url')}`
    await this.save([...this.records, this.bootstrapRecord(hashToken(token).toString('hex'))])
    return token
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

  private async save(records: TokenRecord[]): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify({ tokens: records }, null, 2)}\n`)
    this.replace(records)
  }

  private replace(records: TokenRecord[]): void {
    this.records = records
    this.hashes = records.map((record) => Buffer.from(record.hash, 'hex'))
  }
}
