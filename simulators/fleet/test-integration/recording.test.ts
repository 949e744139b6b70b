import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { openRecording, RecordingWriter } from '../src/recording/files.ts'
import { RECORDING_FORMAT, type RecordedMessage, RecordingFormatError } from '../src/recording/format.ts'

const header = {
  format: RECORDING_FORMAT,
  version: 1,
  createdAt: '2026-11-22T00:00:00Z',
  startS: 1_732_250_000,
  devices: 2,
} as const

describe('recording files', () => {
  it('keeps every message byte for byte and in order, text and binary payloads alike', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'plantwatt-rec-')), 'run.ndjson.gz')
    const messages: RecordedMessage[] = [
      { t: 1_732_250_000.25, site: 'yibin', deviceId: 'a', kind: 'up', payload: Buffer.from('[{"n":"power","v":1}]') },
      {
        t: 1_732_250_001,
        site: 'yibin',
        deviceId: 'b',
        kind: 'up',
        payload: Buffer.from([0x81, 0xa2, 0x00, 0xff, 0xfe]),
      },
      {
        t: 1_732_250_002,
        site: 'yibin',
        deviceId: 'a',
        kind: 'ack',
        payload: Buffer.from('{"id":"c","status":"applied"}'),
      },
      {
        t: 1_732_250_003,
        site: 'yibin',
        deviceId: 'a',
        kind: 'up',
        payload: Buffer.from('line\nbreak "quoted" ünïcode'),
      },
    ]
    const writer = RecordingWriter.open(path, header)
    for (const message of messages) await writer.write(message)
    await writer.close()
    expect(writer.messages).toBe(4)

    const recording = await openRecording(path)
    expect(recording.header).toEqual(header)
    const read: RecordedMessage[] = []
    for await (const message of recording.messages) read.push(message)
    expect(read).toEqual(messages)
  })

  it('refuses a file that is not a plantwatt recording, and a bad line, naming the line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plantwatt-rec-'))
    const notRecording = join(dir, 'other.gz')
    await writeFile(notRecording, gzipSync('{"format":"something-else"}\n'))
    await expect(openRecording(notRecording)).rejects.toThrow(/not a plantwatt recording/)

    const badLine = join(dir, 'bad.gz')
    await writeFile(
      badLine,
      gzipSync(`${JSON.stringify(header)}\n{"t":1,"s":"x","d":"y","k":"up","p":"[]"}\n{"t":"soon"}\n`),
    )
    const recording = await openRecording(badLine)
    const read = async () => {
      for await (const _ of recording.messages) {
      }
    }
    await expect(read()).rejects.toThrow(RecordingFormatError)
    await expect(
      openRecording(badLine).then(async (r) => {
        for await (const _ of r.messages) {
        }
      }),
    ).rejects.toThrow(/line 3/)
  })
})
