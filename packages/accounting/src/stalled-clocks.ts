// Sites whose clock stands still (revision-gate.ts). Revisions of sent buckets go out at most once
// a second of the site clock, and a bucket's last revision when the clock has passed its end by
// 10 × latenessS: both wait for the clock to move. A site whose devices have all reported what they
// hold (the end of a replay, a device emptying days of buffered readings while the others are
// asleep, a plant that stopped for the night) leaves its late readings' revisions waiting for as
// long as it stays quiet, and the history store and the buckets channel keep figures that are
// materially wrong. So once a site's clock has not moved for a second of processing time, what its
// buckets hold unsent goes out exact, at most once a second while it stays still.
//
// Processing time only decides *when* a revision goes out, never what it says: every revision
// carries the exact figures of its moment, and the final figures are the same at any replay speed.
// Pure: the caller passes the clocks and the time.

/** Processing time (ms) a site clock stands still before its held revisions are sent. */
export const SETTLE_AFTER_MS = 1_000

export class StalledClocks {
  private readonly sites = new Map<string, { clockS: number; stillSinceMs: number; settledAtMs: number }>()

  constructor(private readonly afterMs = SETTLE_AFTER_MS) {}

  /**
   * The sites to settle now: their clock has not moved for `afterMs`, and they were not settled in
   * the last `afterMs`. `clocks`: each site's clock (s), undefined before its first reading.
   */
  due(clocks: Iterable<readonly [string, number | undefined]>, nowMs: number): Set<string> {
    const due = new Set<string>()
    for (const [siteId, clockS] of clocks) {
      if (clockS === undefined) continue
      const seen = this.sites.get(siteId)
      if (seen === undefined || seen.clockS !== clockS) {
        this.sites.set(siteId, { clockS, stillSinceMs: nowMs, settledAtMs: Number.NEGATIVE_INFINITY })
        continue
      }
      if (nowMs - seen.stillSinceMs >= this.afterMs && nowMs - seen.settledAtMs >= this.afterMs) {
        seen.settledAtMs = nowMs
        due.add(siteId)
      }
    }
    return due
  }
}
