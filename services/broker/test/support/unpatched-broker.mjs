// A broker as it ran before issue 12: plain aedes (no plantwatt hooks), so it stores any will a
// client sets. The wills test runs it in a child process and SIGKILLs it, leaving its wills behind
// as an unclean stop does: on the LevelDB session store `plantwatt up` uses, or on the Redis of a
// cluster whose other brokers survive it.
// Usage: node unpatched-broker.mjs level DIR BROKER_ID
//        node unpatched-broker.mjs redis URL BROKER_ID HEARTBEAT_MS
// Prints {"port":N} once listening.
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import { ClassicLevel } from 'classic-level'
import { Redis } from 'ioredis'
import MQEmitterRedis from 'mqemitter-redis'

const require = createRequire(import.meta.url)
const [store, where, id, heartbeat] = process.argv.slice(2)
const options = { id }
if (store === 'level') {
  const db = new ClassicLevel(where)
  await db.open()
  options.persistence = require('aedes-persistence-level')(db)
} else {
  options.persistence = require('aedes-persistence-redis')({ conn: new Redis(where) })
  options.mq = MQEmitterRedis({ subConn: new Redis(where), pubConn: new Redis(where), matchEmptyLevels: true })
  options.heartbeatInterval = Number(heartbeat)
}
const aedes = await Aedes.createBroker(options)
const server = createServer((socket) => aedes.handle(socket))
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`)
})
