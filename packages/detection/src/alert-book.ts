// The alert lifecycle (CONTRACT.md §5): raised → (acked) → cleared, one open alert per (kind, scope,
// key) — key is the device for offline alerts, '' otherwise — every state change appended to the
// `alerts` event log with its seq. Times come in as event-time seconds and leave as ms (§5 frames).

import type { Alert, AlertKind, Severity } from '@plantwatt/contract'
import { isWithinScope } from '@plantwatt/plant'
import { alertId } from './alert-id.ts'
import { EventLog, type EventLogJson, type Sequenced } from './event-log.ts'

export interface RaiseInput {
  kind: AlertKind
  scope: string
  /** Distinguishes alerts of one kind on one scope (the device id of an offline alert). */
  key?: string
  sinceS: number
  atS: number
  severity: Severity
  message: string
  data: Record<string, unknown>
}

export type AckResult =
  | { ok: true; alert: Alert }
  | { ok: false; code: 'not_found' | 'already_cleared' | 'already_acked'; message: string }

export interface AlertBookJson {
  /** `seq`: of the alert's latest event (absent in checkpoints written before it was kept). */
  open: { key: string; alert: Alert; seq?: number }[]
  lastClear: [string, number, string][]
  pending: Sequenced<Alert>[]
  log: EventLogJson<Alert>
}

const toMs = (s: number) => Math.round(s * 1000)

export class AlertBook {
  /** Open alerts by `kind|scope|key`. */
  private readonly openByKey = new Map<string, Alert>()
  private readonly openById = new Map<string, string>()
  /** seq of each open alert's latest event, so a replica can be given the open alerts with theirs. */
  private readonly openSeq = new Map<string, number>()
  /** Latest clear per key: event time (s) and id, for marking flapping re-raises. */
  private readonly lastClear = new Map<string, { atS: number; id: string }>()
  private pending: Sequenced<Alert>[] = []

  constructor(
    readonly log: EventLog<Alert>,
    private readonly flapWindowS: number,
  ) {}

  private static keyOf(kind: string, scope: string, key = ''): string {
    return `${kind}|${scope}|${key}`
  }

  isOpen(kind: AlertKind, scope: string, key = ''): boolean {
    return this.openByKey.has(AlertBook.keyOf(kind, scope, key))
  }

  /**
   * Raises an alert; undefined when one of this (kind, scope, key) is already open (one open alert
   * each). A raise within flapWindowS after the previous clear is marked, never dropped (§7).
   */
  raise(input: RaiseInput): Alert | undefined {
    const key = AlertBook.keyOf(input.kind, input.scope, input.key)
    if (this.openByKey.has(key)) return undefined
    const data = { ...input.data }
    const previous = this.lastClear.get(key)
    if (previous !== undefined && input.sinceS - previous.atS <= this.flapWindowS) {
      data.flapping = true
      data.previousId = previous.id
    }
    const sinceMs = toMs(input.sinceS)
    const alert: Alert = {
      id: alertId(input.kind, input.scope, input.key ?? '', sinceMs),
      kind: input.kind,
      state: 'raised',
      severity: input.severity,
      scope: input.scope,
      at: toMs(input.atS),
      since: sinceMs,
      message: input.message,
      data,
    }
    this.openByKey.set(key, alert)
    this.openById.set(alert.id, key)
    this.emit(alert)
    return alert
  }

  /** Clears the open alert of (kind, scope, key), merging `data` into the raise's data. */
  clear(
    kind: AlertKind,
    scope: string,
    key: string | undefined,
    atS: number,
    data: Record<string, unknown>,
    message?: string,
  ) {
    const k = AlertBook.keyOf(kind, scope, key)
    const open = this.openByKey.get(k)
    if (!open) return undefined
    this.openByKey.delete(k)
    this.openById.delete(open.id)
    this.lastClear.set(k, { atS, id: open.id })
    const alert: Alert = {
      ...open,
      state: 'cleared',
      at: toMs(atS),
      message: message ?? open.message,
      data: { ...open.data, ...data },
    }
    this.emit(alert)
    return alert
  }

  /**
   * An operator acknowledges an open alert (CONTRACT.md §4 operator role). `atMs` is the time of the
   * acknowledgement as the caller states it; an error result, never a throw, for a bad request.
   */
  ack(id: string, atMs: number, by?: string): AckResult {
    const key = this.openById.get(id)
    if (key === undefined) {
      const known = this.log.since(0).events.some((e) => e.event.id === id)
      return known
        ? { ok: false, code: 'already_cleared', message: `alert ${id} is already cleared` }
        : { ok: false, code: 'not_found', message: `no alert ${id}` }
    }
    const open = this.openByKey.get(key)!
    if (open.state === 'acked') return { ok: false, code: 'already_acked', message: `alert ${id} is already acked` }
    const data = by === undefined ? open.data : { ...open.data, ackedBy: by }
    const alert: Alert = { ...open, state: 'acked', at: atMs, data }
    this.openByKey.set(key, alert)
    this.emit(alert)
    return { ok: true, alert }
  }

  /** Alerts open now (raised or acked) within `scope` (all when undefined), oldest raise first. */
  open(scope?: string): Alert[] {
    const out: Alert[] = []
    for (const alert of this.openByKey.values())
      if (scope === undefined || isWithinScope(alert.scope, scope)) out.push(alert)
    return out.sort((a, b) => a.since - b.since || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** Alerts open now within `scope`, each with the seq of its latest event, oldest raise first. */
  openSequenced(scope?: string): Sequenced<Alert>[] {
    return this.open(scope).map((alert) => ({ seq: this.openSeq.get(alert.id) ?? 0, event: alert }))
  }

  /** Events appended since the previous call, with their seq. */
  take(): Sequenced<Alert>[] {
    const out = this.pending
    this.pending = []
    return out
  }

  private emit(alert: Alert): void {
    const entry = this.log.append(alert)
    if (alert.state === 'cleared') this.openSeq.delete(alert.id)
    else this.openSeq.set(alert.id, entry.seq)
    this.pending.push(entry)
  }

  toJSON(): AlertBookJson {
    return {
      open: [...this.openByKey].map(([key, alert]) => ({ key, alert, seq: this.openSeq.get(alert.id) })),
      lastClear: [...this.lastClear].map(([key, v]) => [key, v.atS, v.id]),
      pending: this.pending,
      log: this.log.toJSON(),
    }
  }

  static fromJSON(json: AlertBookJson, flapWindowS: number, capacity?: number): AlertBook {
    const book = new AlertBook(EventLog.fromJSON(json.log, capacity), flapWindowS)
    // Older checkpoints lack an open alert's seq: found in the held log where it still is there.
    const latestSeq = new Map<string, number>()
    for (const { seq, event } of book.log.since(0).events) latestSeq.set(event.id, seq)
    for (const { key, alert, seq } of json.open) {
      book.openByKey.set(key, alert)
      book.openById.set(alert.id, key)
      const known = seq ?? latestSeq.get(alert.id)
      if (known !== undefined) book.openSeq.set(alert.id, known)
    }
    for (const [key, atS, id] of json.lastClear) book.lastClear.set(key, { atS, id })
    book.pending = json.pending
    return book
  }
}
