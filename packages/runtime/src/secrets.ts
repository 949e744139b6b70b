import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readJsonFile, writeFileAtomic } from './files.ts'

interface StoredSecrets {
  deviceSecret?: string
}

/**
 * The device secret of CONTRACT.md §4: from the environment when set, else the one generated at
 * first start and kept in the data directory, so that device passwords survive restarts.
 */
export async function loadDeviceSecret(dataDir: string, fromEnv: string | undefined): Promise<string> {
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  const file = join(dataDir, 'secrets.json')
  const stored = (await readJsonFile<StoredSecrets>(file)) ?? {}
  if (stored.deviceSecret) return stored.deviceSecret
  const deviceSecret = randomBytes(32).toString('hex')
  await writeFileAtomic(file, `${JSON.stringify({ ...stored, deviceSecret }, null, 2)}\n`)
  return deviceSecret
}
