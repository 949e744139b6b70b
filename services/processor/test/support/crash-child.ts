// The child process of sigkill-checkpoints.test.ts: feeds the simulated messages through the
// journal with a checkpoint after each of 8 parts, then the 9th part (acknowledged, no checkpoint),
// prints `acked N`, and goes on appending without end until it is killed.

import { createAedesBus } from '@plantwatt/bus'
import { Aedes } from 'aedes'
import { feed, simulatedMessages, startProcessor } from './crash-plant.ts'

const dir = process.argv[2]!
const messages = simulatedMessages()
const aedes = await Aedes.createBroker()
const bus = createAedesBus(aedes)
const clock = { ms: 0 }
const { journal, processor } = await startProcessor(dir, bus, clock)
const size = Math.floor(messages.length / 12)
for (let i = 0; i < 8; i++) {
  await feed(journal, clock, messages.slice(i * size, (i + 1) * size))
  await processor.checkpoint()
}
await feed(journal, clock, messages.slice(8 * size, 9 * size))
process.stdout.write(`acked ${9 * size}\n`)
// Until killed: more appends (some durable, some not when the kill comes).
let at = 9 * size
const more = () => {
  if (at >= messages.length) return
  void feed(journal, clock, messages.slice(at, at + 50)).then(more)
  at += 50
}
more()
