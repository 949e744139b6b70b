import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/** writeFileAtomic's temporaries: `<name>.<8 hex digits>.tmp`. */
const TEMPORARY = /\.[0-9a-f]{8}\.tmp$/

/**
 * Writes a file so that a crash (of the process or the machine) leaves either the old or the new
 * content, never half of one: the new content is synced before it replaces the old by rename, and
 * the directory is synced so that the rename itself survives. A write that fails removes its
 * temporary file (issue 12 finding 12: on a full disk each failed checkpoint left one behind, and
 * the disk stayed full); one a crash leaves is removed by removeStaleTemporaries at the next start.
 */
export async function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o600): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const file = await open(temporary, 'w', mode)
    try {
      await file.writeFile(content)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temporary, path)
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => {})
    throw error
  }
  const directory = await open(dirname(path), 'r')
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
}

/** Reads and parses a JSON file; undefined when it does not exist. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  return JSON.parse(text) as T
}

/**
 * Removes the temporaries writeFileAtomic left in `dir` and its subdirectories (a crash between
 * create and rename); called once at start, before anything writes. Only names of the form
 * `<name>.<8 hex digits>.tmp`; the paths removed are returned for the log.
 */
export async function removeStaleTemporaries(dir: string, depth = 2): Promise<string[]> {
  const removed: string[] = []
  let entries: import('node:fs').Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return removed
    throw error
  }
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isFile() && TEMPORARY.test(entry.name)) {
      await rm(path, { force: true })
      removed.push(path)
    } else if (entry.isDirectory() && depth > 0) {
      removed.push(...(await removeStaleTemporaries(path, depth - 1)))
    }
  }
  return removed
}
