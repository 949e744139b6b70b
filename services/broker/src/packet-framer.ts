// Follows MQTT packet boundaries in a byte stream (MQTT 3.1.1 §2.2: one type byte, then the
// remaining length in 1–4 bytes of 7 bits each) without copying or parsing the packets, so the
// broker can drop a client whose next packet announces more than the limit as soon as the header
// arrives — aedes 1.x has no maximum packet size and buffers whatever is announced — and can see
// a packet that was started but not finished.

export type FramerVerdict = 'ok' | 'too_large' | 'bad_length' | 'bad_type'

/**
 * Packet types a client may send (MQTT 3.1.1 §2.2.1): CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL,
 * PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT. The others (0 and 15 reserved; CONNACK,
 * SUBACK, UNSUBACK, PINGRESP go to clients) aedes would close without a word: caught here, counted.
 */
const CLIENT_PACKET_TYPES = new Set([1, 3, 4, 5, 6, 7, 8, 10, 12, 14])

enum Phase {
  Type = 0,
  Length = 1,
  Body = 2,
}

export class PacketFramer {
  private phase = Phase.Type
  private length = 0
  private multiplier = 1
  private remaining = 0
  /** When the packet now in progress began (ms), or 0 between packets. */
  startedAt = 0
  /** The largest remaining length seen, for tests and diagnostics. */
  largest = 0

  constructor(private readonly maxPacketBytes: number) {}

  /** Feeds one chunk; `now` (ms) stamps a packet that starts in it. */
  push(chunk: Uint8Array, now: number): FramerVerdict {
    let i = 0
    const end = chunk.length
    while (i < end) {
      switch (this.phase) {
        case Phase.Type:
          if (!CLIENT_PACKET_TYPES.has(chunk[i]! >> 4)) return 'bad_type'
          this.startedAt = now
          this.length = 0
          this.multiplier = 1
          this.phase = Phase.Length
          i++
          break
        case Phase.Length: {
          const byte = chunk[i++]!
          this.length += (byte & 0x7f) * this.multiplier
          if (byte & 0x80) {
            this.multiplier *= 128
            // MQTT 3.1.1 §2.2.3: at most four length bytes.
            if (this.multiplier > 128 ** 3) return 'bad_length'
            break
          }
          // The fixed header is at most 5 bytes; the limit is on the whole packet.
          if (this.length > this.maxPacketBytes - 2) return 'too_large'
          if (this.length > this.largest) this.largest = this.length
          this.remaining = this.length
          if (this.remaining === 0) this.finishPacket()
          else this.phase = Phase.Body
          break
        }
        case Phase.Body: {
          const take = Math.min(this.remaining, end - i)
          this.remaining -= take
          i += take
          if (this.remaining === 0) this.finishPacket()
          break
        }
      }
    }
    return 'ok'
  }

  /**
   * Moves the start of the packet in progress `ms` later: time its connection spent slowed (not
   * read, CONTRACT.md §4) does not count towards the incomplete-packet limit.
   */
  standStill(ms: number): void {
    if (this.startedAt !== 0) this.startedAt += ms
  }

  /** True while a packet has begun and not ended. */
  get inPacket(): boolean {
    return this.phase !== Phase.Type
  }

  private finishPacket(): void {
    this.phase = Phase.Type
    this.startedAt = 0
  }
}
