// Late readings into minutes older than the 1-minute ring (cold-minutes.ts): their columns loaded
// from the state store when first needed, the revisions of their buckets computed from the bucket
// as last sent plus what the minute changed (so too for a change to a minute in the ring whose
// bucket began before it), held in an outbox until the checkpoint that holds the columns is
// committed, then handed over to be sent.

import type { AccountingCore } from './accounting-core.ts'
import type { BucketEvent } from './accounting-types.ts'
import { type BucketStep, STEPS } from './calendar.ts'
import { ColdColumn, type StoredFigures } from './cold-minutes.ts'
import { CO2, CO2_MARKET, ENERGY, IDLE, IDLE_CO2, OUTPUT, PV, RECORD_SCALE } from './revision-gate.ts'
import { newFigures, type ScopeFigures } from './scope-figures.ts'
import type { SiteState } from './site-state.ts'

const bucketKey = (scope: string, step: BucketStep, start: number) => `${scope} ${step} ${start}`

/**
 * The bucket events of the take in progress, by key, indexed when first asked: a revision the
 * ring sent ahead of a jump of the clock is the newest figures of its bucket until the history
 * store has it, and a cold revision must go above it.
 */
class TakenEvents {
  private index: Map<string, BucketEvent> | undefined

  constructor(private readonly events: readonly BucketEvent[]) {}

  get(key: string): BucketEvent | undefined {
    if (this.index === undefined) {
      this.index = new Map()
      for (const event of this.events) this.index.set(bucketKey(event.scope, event.step, event.t / 60_000), event)
    }
    return this.index.get(key)
  }
}

export class ColdRevisions {
  /** Cold revisions waiting for the checkpoint that holds their columns (cold-minutes.ts). */
  outbox: { event: BucketEvent; generation: number }[] = []
  /**
   * Cold revisions as last computed, by scope, step and start, until the history store surely
   * holds them (`released`: the generation when they were handed over).
   */
  private readonly sentCold = new Map<
    string,
    { event: BucketEvent; released: number | undefined; generation: number }
  >()

  constructor(
    private readonly core: AccountingCore,
    private readonly figs: ScopeFigures,
  ) {}

  /** The cold column of a minute older than the ring, loaded when first needed; undefined when it cannot be placed. */
  coldColumn(site: SiteState, minute: number): ColdColumn | undefined {
    const held = site.cold.get(minute)
    if (held !== undefined) return held
    if (this.core.cold === undefined || site.clock === undefined || minute >= site.store.oldest()) return undefined
    // CONTRACT.md §7: buckets are revised up to maxAgeS behind the site clock, no further.
    if (minute < Math.floor((site.clock - site.info.maxAgeS) / 60)) return undefined
    const column = new ColdColumn(minute, site.store.nEq, site.store.nAgg, this.core.generation)
    // A minute the ring moved past before a checkpoint wrote it: its newest bytes are still here.
    const bytes = site.store.evicted.get(minute) ?? this.core.cold.column(site.info.spec.id, minute)
    // None held: a minute before the site's first reading, or one that held nothing: zeros.
    if (bytes !== undefined) {
      column.buckets.loadColumn(0, bytes, site.equipmentAggregates)
      column.buckets.loadColumn(1, bytes, site.equipmentAggregates)
    }
    site.cold.set(minute, column)
    return column
  }

  coldTouched(site: SiteState, column: ColdColumn): void {
    site.coldDirty.add(column.minute)
    site.coldChanged.add(column.minute)
    column.generation = this.core.generation
  }

  /**
   * The bucket as last computed here, else as this take hands it out (`taken`: sent ahead of a
   * jump of the clock, not in the history store yet), else as the history store holds it.
   */
  private lastSent(scope: string, step: BucketStep, start: number, taken: TakenEvents): StoredFigures | undefined {
    const key = bucketKey(scope, step, start)
    return this.sentCold.get(key)?.event ?? taken.get(key) ?? this.core.cold?.bucket(scope, step, start * 60_000)
  }

  /**
   * The revision of a bucket that this take changes: the one computed earlier in the take (or
   * still in the outbox and in no snapshot yet: revised in place, one revision for both), else a
   * new one above the bucket as last sent, with its figures.
   */
  private revisionOf(
    round: Map<string, BucketEvent>,
    scope: string,
    step: BucketStep,
    start: number,
    taken: TakenEvents,
  ) {
    const key = bucketKey(scope, step, start)
    let event = round.get(key)
    if (event !== undefined) return event
    const waiting = this.sentCold.get(key)
    if (waiting?.released === undefined && waiting?.generation === this.core.generation) {
      event = waiting.event
      round.set(key, event)
      return event
    }
    const base = this.lastSent(scope, step, start, taken)
    event = {
      scope,
      step,
      t: start * 60_000,
      energyWh: base?.energyWh ?? 0,
      co2G: base?.co2G ?? 0,
      co2MarketG: base?.co2MarketG ?? 0,
      idleWh: base?.idleWh ?? 0,
      peakW: base?.peakW ?? 0,
      revision: base === undefined ? 0 : base.revision + 1,
      pvWh: base?.pvWh ?? 0,
      idleCo2G: base?.idleCo2G ?? 0,
    }
    if (base?.outputUnits !== undefined) event.outputUnits = base.outputUnits
    if (base?.savedWh !== undefined) event.savedWh = base.savedWh
    if (base?.savedCo2G !== undefined) event.savedCo2G = base.savedCo2G
    round.set(key, event)
    return event
  }

  /** Revisions of the buckets of every changed cold minute, and of the straddled buckets noted, into the outbox. */
  emitCold(site: SiteState, takenEvents: readonly BucketEvent[]): void {
    const taken = new TakenEvents(takenEvents)
    const round = new Map<string, BucketEvent>()
    this.emitColdMinutes(site, round, taken)
    this.emitStraddled(site, round, taken)
    for (const [key, event] of round) {
      if (this.sentCold.get(key)?.event === event) continue
      this.outbox.push({ event, generation: this.core.generation })
      this.sentCold.set(key, { event, released: undefined, generation: this.core.generation })
    }
  }

  /**
   * A change to a minute still in the ring, for a bucket whose first minute has left it (a day
   * whose start is more than the ring behind the clock, bucket-revisions.ts foldChanges): the ring
   * cannot sum that bucket any more, so it is revised like a cold one, from the bucket as last
   * sent plus the change (`delta` in revision-gate.ts record units; `peakW` the scope's peak in
   * the minute now, or -1 when it did not rise). Sent by the next emitCold().
   */
  noteStraddled(
    site: SiteState,
    step: BucketStep,
    start: number,
    position: number,
    delta: Float64Array,
    peakW: number,
  ) {
    site.straddled.push({ step, start, position, delta, peakW })
  }

  private emitStraddled(site: SiteState, round: Map<string, BucketEvent>, taken: TakenEvents): void {
    for (const { step, start, position, delta, peakW } of site.straddled.splice(0)) {
      const event = this.revisionOf(round, site.refs[position]!.scope, step, start, taken)
      event.energyWh += delta[ENERGY]! / RECORD_SCALE[ENERGY]!
      event.idleWh += delta[IDLE]! / RECORD_SCALE[IDLE]!
      event.co2G += delta[CO2]!
      event.co2MarketG += delta[CO2_MARKET]!
      event.pvWh = (event.pvWh ?? 0) + delta[PV]!
      event.idleCo2G = (event.idleCo2G ?? 0) + delta[IDLE_CO2]!
      if (delta[OUTPUT] !== 0) event.outputUnits = (event.outputUnits ?? 0) + delta[OUTPUT]! / RECORD_SCALE[OUTPUT]!
      if (peakW > event.peakW) event.peakW = peakW
    }
  }

  private emitColdMinutes(site: SiteState, round: Map<string, BucketEvent>, taken: TakenEvents): void {
    const minutes = [...site.coldDirty].sort((a, b) => a - b)
    site.coldDirty.clear()
    const now = newFigures()
    const old = newFigures()
    for (const minute of minutes) {
      const column = site.cold.get(minute)!
      const b = column.buckets
      const [locNow, marketNow, pvShareNow] = this.figs.coldFactors(site, b, 0, minute)
      const [locOld, marketOld, pvShareOld] = this.figs.coldFactors(site, b, 1, minute)
      for (const ref of site.refs) {
        this.figs.scopeMinute(ref, b, 0, now)
        this.figs.scopeMinute(ref, b, 1, old)
        const co2Now = (now.energy * locNow) / 1000
        const co2Old = (old.energy * locOld) / 1000
        const marketGNow = (now.energy * marketNow) / 1000
        const marketGOld = (old.energy * marketOld) / 1000
        // §5's optional figures the reports sum: PV energy used by the scope, CO2 of its idle energy.
        const pvNow = (now.energy * pvShareNow) / 1000
        const pvOld = (old.energy * pvShareOld) / 1000
        const idleCo2Now = (now.idle * locNow) / 1000
        const idleCo2Old = (old.idle * locOld) / 1000
        if (
          now.energy === old.energy &&
          now.idle === old.idle &&
          now.peak === old.peak &&
          co2Now === co2Old &&
          marketGNow === marketGOld &&
          pvNow === pvOld &&
          idleCo2Now === idleCo2Old
        ) {
          continue
        }
        for (const step of STEPS) {
          const event = this.revisionOf(round, ref.scope, step, site.calendar.bucketStart(step, minute), taken)
          if (step === '1m') {
            // Exact, from the column.
            event.energyWh = now.energy / 1000
            event.co2G = co2Now
            event.co2MarketG = marketGNow
            event.idleWh = now.idle / 1000
            event.peakW = now.peak
            event.pvWh = pvNow
            event.idleCo2G = idleCo2Now
          } else {
            // The bucket as last sent plus what this minute changed: the other minutes are not read.
            event.energyWh += (now.energy - old.energy) / 1000
            event.co2G += co2Now - co2Old
            event.co2MarketG += marketGNow - marketGOld
            event.idleWh += (now.idle - old.idle) / 1000
            event.peakW = Math.max(event.peakW, now.peak)
            event.pvWh = (event.pvWh ?? 0) + pvNow - pvOld
            event.idleCo2G = (event.idleCo2G ?? 0) + idleCo2Now - idleCo2Old
          }
        }
      }
      // What was just revised is the base of the next change to this minute.
      b.loadColumn(1, b.column(0), site.equipmentAggregates)
    }
  }

  /**
   * The checkpoint of snapshot `generation` is committed (columns and outbox on disk): returns the
   * cold revisions it held, to send on the bus and to the history store now, and forgets what is
   * surely stored (cold columns the checkpoint holds, revisions a later checkpoint's barrier saw
   * stored).
   */
  coldCommitted(generation: number): BucketEvent[] {
    const released: BucketEvent[] = []
    const kept: typeof this.outbox = []
    for (const entry of this.outbox) {
      if (entry.generation <= generation) released.push(entry.event)
      else kept.push(entry)
    }
    this.outbox = kept
    for (const [key, entry] of this.sentCold) {
      if (entry.released !== undefined && entry.released <= generation) this.sentCold.delete(key)
    }
    for (const event of released) {
      const entry = this.sentCold.get(`${event.scope} ${event.step} ${event.t / 60_000}`)
      if (entry?.event === event) entry.released = this.core.generation
    }
    for (const site of this.core.sites.values()) {
      for (const [minute, column] of site.cold) {
        if (column.generation <= generation && !site.coldDirty.has(minute) && !site.coldChanged.has(minute)) {
          site.cold.delete(minute)
        }
      }
    }
    return released
  }

  /** After a restore: the cold revisions of the restored outbox, to send again (the store drops repeats). */
  coldRestored(): BucketEvent[] {
    const events = this.outbox.map((entry) => entry.event)
    this.outbox = []
    for (const event of events) {
      this.sentCold.set(`${event.scope} ${event.step} ${event.t / 60_000}`, {
        event,
        released: this.core.generation,
        generation: this.core.generation,
      })
    }
    return events
  }
}
