// The downlinks still owed to devices when `plantwatt up` runs over several workers (issue 16,
// docs/decisions.md). A device may reconnect to any worker, and each worker's session store is its
// own (LevelDB locks its directory per process), so the owner of the tuners — the primary — keeps
// what is pending per device, numbered, until the device has it: PUBACK of the command (a
// persistent session), or the device's answer on its `ack` topic naming the command's id (any
// session). Every worker mirrors the set: it sends a device the pending commands when its session
// is up or it subscribes, and forwards a command from its own session store only while it is
// still pending (a copy stored there may have been delivered through another worker meanwhile).
// PendingDownlinks is pure; the primary persists its snapshots in the data directory.

import { readFile } from 'node:fs/promises'
import { deserialize, serialize } from 'node:v8'
import type { Broker } from '@plantwatt/broker'
import { parseDeviceTopic } from '@plantwatt/contract'
import { type JournalRecord, type Logger, writeFileAtomic } from '@plantwatt/runtime'
import type { Downlink, FromWorker, ToWorker } from './protocol.ts'

interface Entry extends Downlink {
  /** The command's `id` (CONTRACT.md §3), which the device's answer names; undefined if unparsable. */
  commandId: string | undefined
}

function commandIdOf(payload: Buffer): string | undefined {
  try {
    const id = (JSON.parse(payload.toString('utf8')) as { id?: unknown } | null)?.id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

export class PendingDownlinks {
  private readonly byDevice = new Map<string, Entry[]>()
  private nextN = 1
  /** Commands dropped unsent because a device had `maxPerDevice` pending (oldest first). */
  dropped = 0

  constructor(private readonly maxPerDevice = 16) {}

  /** A new command for a device; the oldest pending one goes if it has too many. */
  add(deviceId: string, topic: string, payload: Buffer): { downlink: Downlink; evicted: Downlink | undefined } {
    const entry: Entry = { n: this.nextN++, topic, payload, commandId: commandIdOf(payload) }
    let list = this.byDevice.get(deviceId)
    if (!list) {
      list = []
      this.byDevice.set(deviceId, list)
    }
    list.push(entry)
    let evicted: Downlink | undefined
    if (list.length > this.maxPerDevice) {
      evicted = toDownlink(list.shift()!)
      this.dropped++
    }
    return { downlink: toDownlink(entry), evicted }
  }

  /** Downlink `n` reached the device: true if it was pending. */
  settle(deviceId: string, n: number): boolean {
    const list = this.byDevice.get(deviceId)
    const at = list?.findIndex((entry) => entry.n === n) ?? -1
    if (at < 0) return false
    list!.splice(at, 1)
    if (list!.length === 0) this.byDevice.delete(deviceId)
    return true
  }

  /** The device answered command `commandId`: the numbers of the pending downlinks it settles. */
  settleAnswered(deviceId: string, commandId: string): number[] {
    const settled = (this.byDevice.get(deviceId) ?? []).filter((entry) => entry.commandId === commandId)
    for (const entry of settled) this.settle(deviceId, entry.n)
    return settled.map((entry) => entry.n)
  }

  of(deviceId: string): readonly Downlink[] {
    return (this.byDevice.get(deviceId) ?? []).map(toDownlink)
  }

  /** Downlink `n` of the device, if pending; else the pending one with exactly these bytes. */
  find(deviceId: string, payload: Buffer): Downlink | undefined {
    const entry = this.byDevice.get(deviceId)?.find((candidate) => candidate.payload.equals(payload))
    return entry && toDownlink(entry)
  }

  entries(): [string, Downlink[]][] {
    return [...this.byDevice].map(([deviceId, list]) => [deviceId, list.map(toDownlink)])
  }

  get size(): number {
    let size = 0
    for (const list of this.byDevice.values()) size += list.length
    return size
  }

  /** Replaces the whole set (a worker's mirror at its start). */
  load(entries: [string, Downlink[]][]): void {
    this.byDevice.clear()
    for (const [deviceId, list] of entries) {
      this.byDevice.set(
        deviceId,
        list.map((downlink) => ({
          ...downlink,
          payload: Buffer.from(downlink.payload),
          commandId: commandIdOf(Buffer.from(downlink.payload)),
        })),
      )
      for (const downlink of list) this.nextN = Math.max(this.nextN, downlink.n + 1)
    }
  }

  /** Mirrors a downlink the owner numbered (a worker's copy). */
  mirror(deviceId: string, downlink: Downlink): void {
    let list = this.byDevice.get(deviceId)
    if (!list) {
      list = []
      this.byDevice.set(deviceId, list)
    }
    const payload = Buffer.from(downlink.payload)
    list.push({ n: downlink.n, topic: downlink.topic, payload, commandId: commandIdOf(payload) })
    if (list.length > this.maxPerDevice) list.shift()
  }
}

function toDownlink(entry: Entry): Downlink {
  return { n: entry.n, topic: entry.topic, payload: entry.payload }
}

const FORMAT = 'plantwatt-pending-downlinks'

/** Writes the pending set (atomically); a full restart then still owes the devices their commands. */
export async function savePendingDownlinks(path: string, pending: PendingDownlinks): Promise<void> {
  await writeFileAtomic(path, serialize({ format: FORMAT, version: 1, entries: pending.entries() }))
}

export async function loadPendingDownlinks(path: string, pending: PendingDownlinks): Promise<void> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  const value = deserialize(bytes) as { format?: string; entries?: [string, Downlink[]][] }
  if (value?.format !== FORMAT || !Array.isArray(value.entries))
    throw new Error(`${path} is not a pending-downlinks file`)
  pending.load(value.entries)
}

/** The owner's side (the primary): numbers the tuners' commands, settles them, tells every worker. */
export class DownlinkOwner {
  constructor(
    private readonly pending: PendingDownlinks,
    private readonly broadcast: (message: ToWorker) => void,
    private readonly changed: () => void,
    private readonly logger: Logger,
  ) {}

  /** A command published on a device's `down` topic (CONTRACT.md §3). */
  command(topic: string, payload: Buffer): void {
    const target = parseDeviceTopic(topic)
    if (target?.kind !== 'down') return
    const { downlink, evicted } = this.pending.add(target.deviceId, topic, Buffer.from(payload))
    if (evicted) {
      this.logger.warn({ deviceId: target.deviceId }, 'too many commands pending for a device: the oldest dropped')
      this.broadcast({ t: 'settled', deviceId: target.deviceId, n: evicted.n })
    }
    this.broadcast({ t: 'down', deviceId: target.deviceId, downlink })
    this.changed()
  }

  /** A worker saw the device acknowledge (PUBACK) downlink `n`. */
  delivered(deviceId: string, n: number): void {
    if (!this.pending.settle(deviceId, n)) return
    this.broadcast({ t: 'settled', deviceId, n })
    this.changed()
  }

  /** A durable record: a device's answer on its `ack` topic settles the command it names, whatever its session. */
  record(record: JournalRecord): void {
    if (!record.topic.endsWith('/ack')) return
    const target = parseDeviceTopic(record.topic)
    if (target?.kind !== 'ack') return
    const id = commandIdOf(record.payload)
    if (id === undefined) return
    const settled = this.pending.settleAnswered(target.deviceId, id)
    for (const n of settled) this.broadcast({ t: 'settled', deviceId: target.deviceId, n })
    if (settled.length > 0) this.changed()
  }
}

/**
 * A worker's side: mirrors the pending set, offers a device its commands when it is ready here
 * (connected and subscribed to its `down` topic), and lets aedes forward a stored copy only while
 * it is pending. `offered` are those handed to aedes for the device on this worker: a persistent
 * session keeps them, and aedes sends them again itself at the device's next connect here.
 */
export class WorkerDownlinks {
  readonly mirror = new PendingDownlinks()
  private readonly offered = new Map<string, Set<number>>()

  constructor(
    private readonly broker: Broker,
    private readonly send: (message: FromWorker) => void,
    private readonly logger: Logger,
  ) {
    // A clean session keeps nothing of what was offered before: offer it all again.
    broker.events.on('deviceSession', (deviceId: string, clean: boolean) => {
      if (clean) this.offered.delete(deviceId)
    })
    broker.events.on('deviceReady', (deviceId: string) => this.offer(deviceId))
    broker.events.on('downlinkAcked', (deviceId: string, _topic: string, payload: Buffer) => {
      const downlink = this.mirror.find(deviceId, payload)
      if (downlink) this.send({ t: 'delivered', deviceId, n: downlink.n })
    })
  }

  /** For the broker's forwardDownlink hook: only pending commands reach a device. */
  isPending(deviceId: string, payload: Buffer): boolean {
    return this.mirror.find(deviceId, payload) !== undefined
  }

  receive(message: ToWorker): void {
    if (message.t === 'start') this.mirror.load(message.pending)
    else if (message.t === 'down') {
      this.mirror.mirror(message.deviceId, message.downlink)
      if (this.broker.isDeviceReady(message.deviceId)) this.offer(message.deviceId)
    } else if (message.t === 'settled') {
      this.mirror.settle(message.deviceId, message.n)
      this.offered.get(message.deviceId)?.delete(message.n)
    }
  }

  private offer(deviceId: string): void {
    let sent = this.offered.get(deviceId)
    for (const downlink of this.mirror.of(deviceId)) {
      if (sent?.has(downlink.n)) continue
      if (!sent) {
        sent = new Set()
        this.offered.set(deviceId, sent)
      }
      sent.add(downlink.n)
      this.broker.bus.publish(downlink.topic, downlink.payload, { qos: 1 }).catch((error) => {
        this.logger.warn({ err: error, deviceId }, 'downlink not published')
      })
    }
  }
}
