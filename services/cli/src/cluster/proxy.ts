import { timingSafeEqual } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'

// MQTT over WebSocket (/mqtt) with `plantwatt up --workers N`: the gateway (in the primary) takes
// the upgrade, and the MQTT bytes go to a worker over a loopback connection to the workers' proxy
// port (handed out round-robin like device connections). The connection starts with one line,
// `<cluster key> <client address>\n`, so the worker applies the per-address rules of CONTRACT.md
// §4 to the WebSocket client's address, not the primary's; the key (random per start, given to
// the workers in their environment) keeps anyone else on the machine from claiming an address.

const MAX_HEADER_BYTES = 512

/** Pipes a WebSocket's MQTT stream to a worker through the proxy port. */
export function proxyToWorker(stream: Duplex, address: string, proxyPort: number, key: string): void {
  const socket = connect(proxyPort, '127.0.0.1')
  socket.setNoDelay(true)
  socket.write(`${key} ${address.replace(/\s/g, '')}\n`)
  stream.pipe(socket)
  socket.pipe(stream)
  const close = () => {
    stream.destroy()
    socket.destroy()
  }
  stream.once('close', close)
  socket.once('close', close)
  stream.on('error', close)
  socket.on('error', close)
}

/**
 * Reads the header line of a proxied connection; `accept` gets the client's address once the key
 * matched, with the rest of the bytes put back. A wrong key or no line within 512 bytes: closed.
 */
export function decodeProxyHeader(socket: Socket, key: string, accept: (address: string) => void): void {
  let head = Buffer.alloc(0)
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk])
    const end = head.indexOf(0x0a)
    if (end < 0) {
      if (head.length > MAX_HEADER_BYTES) socket.destroy()
      return
    }
    socket.off('data', onData)
    socket.pause()
    const [given = '', address = 'unknown'] = head.toString('utf8', 0, end).split(' ')
    const expected = Buffer.from(key)
    const offered = Buffer.from(given)
    if (key === '' || offered.length !== expected.length || !timingSafeEqual(offered, expected)) {
      socket.destroy()
      return
    }
    const rest = head.subarray(end + 1)
    if (rest.length > 0) socket.unshift(rest)
    accept(address)
    socket.resume()
  }
  socket.on('data', onData)
  socket.on('error', () => socket.destroy())
}
