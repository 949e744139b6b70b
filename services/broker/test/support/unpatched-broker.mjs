// A broker as it ran before issue 12: plain aedes (no plantwatt hooks) on the LevelDB session
// store `plantwatt up` uses, so it stores any will a client sets. The wills test runs it in a
// child process and SIGKILLs it, leaving its wills on disk as an unclean stop does.
// Usage: node unpatched-broker.mjs DIR BROKER_ID; prints {"port":N} once listening.
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import { ClassicLevel } from 'classic-level'

const require = createRequire(import.meta.url)
const [dir, id] = process.argv.slice(2)
const db = new ClassicLevel(dir)
await db.open()
const persistence = require('aedes-persistence-level')(db)
const aedes = await Aedes.createBroker({ id, persistence })
const server = createServer((socket) => aedes.handle(socket))
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`)
})
