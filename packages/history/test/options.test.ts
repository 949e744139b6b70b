import { describe, expect, it } from 'vitest'
import { HistoryOptionsError } from '../src/options.ts'
import { HistoryWriter } from '../src/writer.ts'
import { silentLogger } from './helpers.ts'

describe('HistoryWriter options', () => {
  const valid = { url: 'http://127.0.0.1:8086', org: 'o', bucket: 'b', directory: '/tmp/x', logger: silentLogger }

  it.each([
    [{ url: 'not a url' }, 'url'],
    [{ url: 'ftp://host' }, 'url'],
    [{ org: '' }, 'org'],
    [{ bucket: 3 }, 'bucket'],
    [{ directory: undefined }, 'directory'],
    [{ logger: {} }, 'logger'],
    [{ token: '' }, 'token'],
    [{ maxMemoryPoints: 0 }, 'maxMemoryPoints'],
    [{ batchSize: 1.5 }, 'batchSize'],
    [{ requestTimeoutMs: '10s' }, 'requestTimeoutMs'],
    [{ minRetryDelayMs: 5000, maxRetryDelayMs: 1000 }, 'minRetryDelayMs'],
    [{ maxDiskBytes: 10 }, 'maxDiskBytes'],
    [{ random: 4 }, 'random'],
    [{ maxMemoryPoint: 10 }, 'maxMemoryPoint'],
  ])('refuses %o naming the key', (patch, key) => {
    let error: unknown
    try {
      new HistoryWriter({ ...valid, ...(patch as object) } as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(HistoryOptionsError)
    expect((error as HistoryOptionsError).key).toBe(key)
    expect((error as Error).message).toContain(`"${key}"`)
  })

  it('never puts the token in a message', () => {
    expect(() => new HistoryWriter({ ...valid, token: 42 as never })).toThrow(/got "number"/)
  })

  it('accepts the minimal options', () => {
    expect(() => new HistoryWriter(valid)).not.toThrow()
  })
})
