// Offline devices (CONTRACT.md §7): a device is offline when the site clock has passed its latest
// reading by more than offlineAfterS; the alert clears when it reports again; a device that has
// never reported is `unknown`, not offline.
//
// Judged on the release watermark (site clock − latenessS), not on the raw site clock, so that the
// result depends only on the set of readings, not on how batches of different devices interleave:
// once the watermark is past a time, every reading before it has arrived (the lateness bound), so a
// silence seen there is real. An offline alert therefore has since = the last reading before the
// silence, at = since + offlineAfterS, and is emitted once the site clock passes at + latenessS —
// exactly §7's "at the latest when the site clock has passed its at by latenessS". It clears at the
// first reading after the silence (at = that reading's time), emitted when the watermark reaches it.
//
// Per device only the merged spans of its reading times are kept (readings closer than
// offlineAfterS merge; usually one span), and a heap of deadlines (the next time the watermark must
// reach for the device's state to change) makes checking cost O(log n) per change, never a scan of
// all devices. Heap entries are lazy: a device's stale entries are skipped when popped.

import { MinHeap } from './min-heap.ts'

export interface OfflineEvent {
  type: 'raise' | 'clear'
  deviceId: string
  /** The last reading before the silence (s). */
  sinceS: number
  /** raise: sinceS + offlineAfterS; clear: the first reading after the silence. */
  atS: number
}

interface DeviceTrack {
  /** Sorted disjoint spans of reading times; consecutive spans are more than offlineAfterS apart. */
  starts: number[]
  ends: number[]
  offline: boolean
  /** The deadline of the device's live heap entry, or NaN when it has none. */
  scheduled: number
  order: number
}

export interface OfflineJson {
  devices: [string, number[], number[], boolean][]
}

export type DeviceStatus = 'online' | 'offline' | 'unknown'

export class OfflineTracker {
  private readonly devices = new Map<string, DeviceTrack>()
  private readonly heap = new MinHeap<string>()
  private watermark = Number.NEGATIVE_INFINITY

  constructor(private readonly offlineAfterS: number) {}

  status(deviceId: string): DeviceStatus {
    const d = this.devices.get(deviceId)
    return d === undefined ? 'unknown' : d.offline ? 'offline' : 'online'
  }

  /** Latest reading time seen from the device (s), undefined when it never reported. */
  lastSeenS(deviceId: string): number | undefined {
    const d = this.devices.get(deviceId)
    return d === undefined ? undefined : d.ends[d.ends.length - 1]
  }

  /**
   * A reading of the device at tS, as it arrives (any order). Returns a clear when the reading ends
   * an offline episode although it arrived behind the watermark (beyond the lateness bound): it is
   * then processed as it arrives, cleared at its own time.
   */
  observe(deviceId: string, tS: number): OfflineEvent | undefined {
    let d = this.devices.get(deviceId)
    if (d === undefined) {
      d = { starts: [tS], ends: [tS], offline: false, scheduled: Number.NaN, order: this.devices.size }
      this.devices.set(deviceId, d)
      this.schedule(deviceId, d)
      return undefined
    }
    let late: OfflineEvent | undefined
    if (d.offline && tS < this.watermark && tS > d.ends[0]!) {
      late = { type: 'clear', deviceId, sinceS: d.ends[0]!, atS: tS }
      d.offline = false
      d.starts.shift()
      d.ends.shift()
      d.scheduled = Number.NaN
      if (d.starts.length === 0) {
        d.starts.push(tS)
        d.ends.push(tS)
        this.schedule(deviceId, d)
        return late
      }
    }
    this.merge(d, tS)
    this.schedule(deviceId, d)
    return late
  }

  private merge(d: DeviceTrack, tS: number): void {
    const gap = this.offlineAfterS
    const { starts, ends } = d
    const last = ends.length - 1
    // The common case: in order, within the latest span.
    if (tS >= starts[last]! && tS <= ends[last]! + gap) {
      if (tS > ends[last]!) ends[last] = tS
      return
    }
    // Find the first span ending at or after tS − gap, merge into it or insert before it.
    let i = 0
    while (i < ends.length && ends[i]! + gap < tS) i++
    if (i < starts.length && starts[i]! - gap <= tS) {
      starts[i] = Math.min(starts[i]!, tS)
      ends[i] = Math.max(ends[i]!, tS)
      // Extending may close the gap to the next span.
      while (i + 1 < starts.length && starts[i + 1]! - ends[i]! <= gap) {
        ends[i] = Math.max(ends[i]!, ends[i + 1]!)
        starts.splice(i + 1, 1)
        ends.splice(i + 1, 1)
      }
    } else {
      starts.splice(i, 0, tS)
      ends.splice(i, 0, tS)
    }
  }

  /** Moves the watermark (non-decreasing) and returns the state changes, in deadline order. */
  advance(watermark: number): OfflineEvent[] {
    if (!(watermark > this.watermark)) return []
    this.watermark = watermark
    const out: OfflineEvent[] = []
    for (;;) {
      const key = this.heap.peekKey()
      if (key === undefined || !(key < watermark)) break
      const id = this.heap.pop()!
      const d = this.devices.get(id)!
      if (d.scheduled !== key) continue
      d.scheduled = Number.NaN
      // An entry scheduled before the device's span grew is early: move it to the true deadline, so
      // changes come out in (deadline, device) order whatever the heap's history (restores included).
      const due = this.deadlineOf(d)
      if (due !== key) {
        this.schedule(id, d)
        continue
      }
      this.settle(id, d, out)
      this.schedule(id, d)
    }
    return out
  }

  /**
   * Applies the device's next change, now due (its deadline is before the watermark). One change
   * per heap entry: a further change of the same device (a raise, then the clear at its next
   * reading) is rescheduled at its own deadline, so changes of all devices come out in deadline
   * order however far one advance() goes — the same order in one jump as in many small steps.
   */
  private settle(id: string, d: DeviceTrack, out: OfflineEvent[]): void {
    const w = this.watermark
    if (!d.offline) {
      // All readings before w are in: no reading in (end, end + offlineAfterS] means offline.
      const at = d.ends[0]! + this.offlineAfterS
      if (!(at < w)) return
      d.offline = true
      out.push({ type: 'raise', deviceId: id, sinceS: d.ends[0]!, atS: at })
    } else {
      // Readings before w are released (reorder buffer): the next span's first one ends it.
      if (d.starts.length < 2 || !(d.starts[1]! < w)) return
      out.push({ type: 'clear', deviceId: id, sinceS: d.ends[0]!, atS: d.starts[1]! })
      d.starts.shift()
      d.ends.shift()
      d.offline = false
    }
  }

  private schedule(id: string, d: DeviceTrack): void {
    // Before a raise: the watermark must pass end + offlineAfterS. Offline: the clear is due when the
    // watermark passes the next span's first reading. Both strictly (advance pops key < watermark).
    const deadline = this.deadlineOf(d)
    if (deadline === undefined) return
    if (d.scheduled === deadline) return
    if (!Number.isNaN(d.scheduled) && d.scheduled < deadline) return // the earlier entry will re-settle
    d.scheduled = deadline
    this.heap.push(deadline, d.order, id)
  }

  private deadlineOf(d: DeviceTrack): number | undefined {
    if (!d.offline) return d.ends[0]! + this.offlineAfterS
    return d.starts.length >= 2 ? d.starts[1]! : undefined
  }

  toJSON(): OfflineJson {
    return { devices: [...this.devices].map(([id, d]) => [id, d.starts, d.ends, d.offline]) }
  }

  restore(json: OfflineJson, watermark: number): void {
    this.watermark = watermark
    for (const [id, starts, ends, offline] of json.devices) {
      const d: DeviceTrack = { starts, ends, offline, scheduled: Number.NaN, order: this.devices.size }
      this.devices.set(id, d)
      this.schedule(id, d)
    }
  }
}
