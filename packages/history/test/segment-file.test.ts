import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { crc32 } from '../src/crc32.ts'
import {
  encodeRecords,
  parseSegment,
  parseSegmentFileName,
  SEGMENT_HEADER,
  SegmentAppender,
  segmentFileName,
} from '../src/segment-file.ts'
import { tempDir } from './helpers.ts'

describe('segment file format', () => {
  let dir: ReturnType<typeof tempDir>
  afterEach(() => dir?.remove())

  it('uses the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926)
  })

  it('names files so that name order is id order', () => {
    expect(segmentFileName(42)).toBe('0000000000000042.seg')
    expect(parseSegmentFileName('0000000000000042.seg')).toBe(42)
    expect(parseSegmentFileName('0000000000000042.seg.unreadable')).toBeNull()
    expect(segmentFileName(9) < segmentFileName(10)).toBe(true)
  })

  it('round-trips lines through an appended, sealed file', () => {
    dir = tempDir()
    const path = join(dir.path, segmentFileName(1))
    const lines = ['bucket,site=a v=1 1', 'm,site=宜宾\\ cell msg="x \\"y\\"" 2', 'm v=3 3']
    const file = new SegmentAppender(path)
    file.append(encodeRecords(lines, 0, 2))
    file.append(encodeRecords(lines, 2, 3))
    file.seal()
    file.seal()
    const data = readFileSync(path)
    expect(data.toString('utf8').startsWith(SEGMENT_HEADER)).toBe(true)
    expect(data.toString('utf8').split('\n')[1]).toMatch(/^[0-9a-f]{8} bucket,site=a v=1 1$/)
    expect(parseSegment(data)).toEqual({ lines, corrupt: 0, tornBytes: 0, badHeader: false })
  })

  it('skips a torn last record and counts a corrupt one', () => {
    const body = encodeRecords(['a v=1 1', 'b v=2 2', 'c v=3 3'], 0, 3)
    const data = Buffer.concat([Buffer.from(SEGMENT_HEADER), body])
    const corrupted = Buffer.from(data)
    corrupted[SEGMENT_HEADER.length + 12] = 'X'.charCodeAt(0) // inside the first record's line
    const torn = corrupted.subarray(0, corrupted.length - 3)
    expect(parseSegment(torn)).toEqual({ lines: ['b v=2 2'], corrupt: 1, tornBytes: 14, badHeader: false })
  })

  it('reads nothing from a file of another format', () => {
    expect(parseSegment(Buffer.from('something else\n')).badHeader).toBe(true)
    dir = tempDir()
    const path = join(dir.path, 'x')
    writeFileSync(path, '')
    expect(parseSegment(readFileSync(path)).badHeader).toBe(true)
  })
})
