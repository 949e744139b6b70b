import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'

/**
 * An MQTT client on a bare socket, for sending exactly the bytes a test needs (malformed,
 * oversized, trickled, MQTT 5) and reading the broker's answers packet by packet.
 */
export class RawClient {
  readonly packets: Packet[] = []
  closed = false
  private waiters: { predicate: (packet: Packet) => boolean; resolve: (packet: Packet) => void }[] = []
  private readonly closedPromise: Promise<void>

  private constructor(
    readonly socket: Socket,
    protocolVersion: 4 | 5,
  ) {
    const parser = mqttPacket.parser({ protocolVersion })
    parser.on('packet', (packet: Packet) => {
      this.packets.push(packet)
      this.waiters = this.waiters.filter((waiter) => {
        if (!waiter.predicate(packet)) return true
        waiter.resolve(packet)
        return false
      })
    })
    parser.on('error', () => {})
    socket.on('data', (chunk) => parser.parse(chunk))
    socket.on('error', () => {})
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true
        resolve()
      }),
    )
  }

  static async open(port: number, protocolVersion: 4 | 5 = 4): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    return new RawClient(socket, protocolVersion)
  }

  /** Opens a connection from a given local address (127.0.0.2…): another source address on loopback. */
  static async openFrom(port: number, localAddress: string): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, localAddress })
    await once(socket, 'connect')
    return new RawClient(socket, 4)
  }

  send(packet: Packet, protocolVersion: 4 | 5 = 4): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion }))
  }

  write(bytes: Uint8Array): boolean {
    return this.socket.write(bytes)
  }

  next(cmd: Packet['cmd']): Promise<Packet> {
    const found = this.packets.find((packet) => packet.cmd === cmd)
    if (found) return Promise.resolve(found)
    return new Promise((resolve) => this.waiters.push({ predicate: (packet) => packet.cmd === cmd, resolve }))
  }

  /** Resolves when the broker has closed the connection. */
  whenClosed(): Promise<void> {
    return this.closedPromise
  }

  destroy(): void {
    this.socket.destroy()
  }
}

export function connectPacket(clientId: string, username?: string, password?: string, extra: object = {}): Packet {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive: 60,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password: Buffer.from(password) }),
    ...extra,
  } as Packet
}
