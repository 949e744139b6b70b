import { MemoryHistoryWriter } from '../src/memory-writer.ts'
import { HistoryWriter } from '../src/writer.ts'
import { FakeSender, silentLogger, tempDir } from './helpers.ts'
import { sinkSuite } from './sink-suite.ts'

sinkSuite('MemoryHistoryWriter (the twin)', async () => {
  const sink = new MemoryHistoryWriter()
  return { sink, received: async () => sink.lines, close: async () => {} }
})

sinkSuite('HistoryWriter with an in-process sender', async () => {
  const dir = tempDir()
  const sender = new FakeSender()
  const sink = new HistoryWriter(
    { url: 'http://127.0.0.1:1', org: 'o', bucket: 'b', directory: dir.path, logger: silentLogger, batchSize: 64 },
    sender,
  )
  return { sink, received: async () => sender.received, close: async () => dir.remove() }
})
