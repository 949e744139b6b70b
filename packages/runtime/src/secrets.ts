import { randomBytes } from 'node:crypto'
import { link, open, readFile, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeFileAtomic } from './files.ts'

// Secrets generated at first start and kept in the data directory (CONTRACT.md §4), each in a
// file of its own that is written once and never rewritten: the file appears complete or not at
// all (link(2) of a synced temporary file, which fails if the file exists), so however many loads
// race — in one process or in several roles sharing a data directory — exactly one generated
// secret wins and every caller returns that one. No read-modify-write, hence nothing to lock.

/** The device secret: device passwords are HMAC-SHA256 of it over the device id. */
export const DEVICE_SECRET_FILE = 'secrets.json'

/**
 * The device secret of CONTRACT.md §4: from the environment when set, else the one generated at
 * first start and kept in the data directory, so that device passwords survive restarts.
 */
export function loadDeviceSecret(dataDir: string, fromEnv: string | undefined): Promise<string> {
  return loadSecret(join(dataDir, DEVICE_SECRET_FILE), 'deviceSecret', fromEnv)
}

async function loadSecret(file: string, key: string, fromEnv: string | undefined): Promise<string> {
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  const stored = await readSecret(file, key)
  if (stored !== undefined) return stored
  const generated = randomBytes(32).toString('hex')
  if (await createOnce(file, `${JSON.stringify({ [key]: generated }, null, 2)}\n`)) return generated
  // Another load created it first: its secret is the one.
  const winner = await readSecret(file, key)
  if (winner === undefined) throw new Error(`${file} holds no ${key}`)
  return winner
}

async function readSecret(file: string, key: string): Promise<string | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  const value = (JSON.parse(text) as Record<string, unknown>)[key]
  // A file without the key was edited by hand: say so rather than replace a secret devices use.
  if (typeof value !== 'string' || value === '') {
    throw new Error(`${file} holds no ${key}: remove the file to generate one, or set it in the environment`)
  }
  return value
}

/** Creates `file` with `content` unless it exists; true when this call created it. */
async function createOnce(file: string, content: string): Promise<boolean> {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.new`
  await writeFileAtomic(temporary, content)
  try {
    await link(temporary, file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    await unlink(temporary).catch(() => {})
  }
  const directory = await open(dirname(file), 'r')
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
  return true
}
