import { chmod, mkdir, stat } from 'node:fs/promises'
import type { Logger } from './logger.ts'

/**
 * The data directory holds the device secret, token hashes, the journal of readings, sessions and
 * the history spool (CONTRACT.md §8): for plantwatt's own user only (issue 12, finding 19).
 */
export const DATA_DIR_MODE = 0o700

const octal = (mode: number) => mode.toString(8).padStart(4, '0')

/**
 * Makes the data directory (and missing parents) 0700, or tightens an existing one that lets
 * group or others in to 0700, saying so once in the log. A directory that cannot be tightened
 * (another owner, a file system without modes) is used as it is, with a warning naming the fix.
 */
export async function prepareDataDirectory(dir: string, logger: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DATA_DIR_MODE })
  const mode = (await stat(dir)).mode & 0o777
  if ((mode & 0o077) === 0) return
  try {
    await chmod(dir, DATA_DIR_MODE)
  } catch (error) {
    logger.warn(
      { dataDir: dir, mode: octal(mode), err: error },
      `data directory is open to other users and could not be tightened; run chmod 700 on it`,
    )
    return
  }
  logger.warn({ dataDir: dir, from: octal(mode), to: octal(DATA_DIR_MODE) }, 'data directory tightened')
}
