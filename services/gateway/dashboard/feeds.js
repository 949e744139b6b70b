// The alert feed, the setpoint events and the "idle now" list. Rows are keyed by id and kept
// between renders: a new event inserts one row and an update rewrites one row, so a busy plant
// does not rebuild hundreds of rows per frame. All text goes in through textContent, never as
// markup: alert messages and plant names are data.

import * as fmt from './format.js'

function el(tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

/**
 * Makes `list`'s children the rows of `entries`, in order: rows are created once per id
 * (`create`), rewritten when the entry's version changed (`update`), moved only when out of place.
 */
function reconcile(list, entries, rows, create, update) {
  const keep = new Set()
  let cursor = list.firstElementChild
  for (const entry of entries) {
    const id = entry.item.id
    keep.add(id)
    let row = rows.get(id)
    if (!row) {
      row = create(entry)
      rows.set(id, row)
    }
    if (row.version !== entry.version) {
      update(row, entry)
      row.version = entry.version
    }
    if (row === cursor) cursor = cursor.nextElementSibling
    else list.insertBefore(row, cursor)
  }
  for (const [id, row] of rows) {
    if (keep.has(id)) continue
    row.remove()
    rows.delete(id)
  }
}

const KIND_LABELS = {
  idle: 'Idle',
  offline: 'Offline',
  anomaly: 'Anomaly',
  constraint: 'Constraint',
  command: 'Command',
}

/**
 * @param {object} context
 * @param {(scope: string) => string} context.where a readable place for a scope
 * @param {() => import('./format.js').SiteTime} context.siteTime
 * @param {() => number | undefined} context.clock the site clock, ms
 */
export class AlertFeed {
  constructor(list, context, onAck) {
    this.list = list
    this.context = context
    this.onAck = onAck
    this.rows = new Map()
  }

  render(entries) {
    reconcile(
      this.list,
      entries,
      this.rows,
      (entry) => this.create(entry),
      (row, entry) => this.update(row, entry),
    )
  }

  /** Shows the outcome of an action on a row until its next state arrives. */
  actionMessage(id, text, isError) {
    const row = this.rows.get(id)
    if (!row) return
    row.parts.note.textContent = text
    row.parts.note.classList.toggle('error', isError)
  }

  clear() {
    this.rows.clear()
    this.list.replaceChildren()
  }

  create(entry) {
    const row = el('li', 'event alert')
    row.dataset.id = entry.item.id
    const parts = {
      severity: el('span', 'severity'),
      kind: el('strong', 'kind'),
      where: el('span', 'where'),
      message: el('p', 'message'),
      time: el('time'),
      state: el('span', 'state'),
      ack: el('button', 'ack', 'Acknowledge'),
      note: el('p', 'note'),
    }
    parts.ack.type = 'button'
    parts.ack.addEventListener('click', () => this.onAck(entry.item.id, parts.ack))
    const head = el('div', 'head')
    head.append(parts.severity, parts.kind, parts.where, parts.time)
    const side = el('div', 'side')
    side.append(parts.state, parts.ack)
    const body = el('div', 'body')
    body.append(head, parts.message, parts.note)
    row.append(body, side)
    row.parts = parts
    return row
  }

  update(row, entry) {
    const { item } = entry
    const { parts } = row
    row.dataset.state = item.state
    row.dataset.kind = item.kind
    row.dataset.severity = item.severity
    parts.severity.textContent = item.severity
    parts.kind.textContent = KIND_LABELS[item.kind] ?? item.kind
    parts.where.textContent = this.context.where(item.scope)
    parts.where.title = item.scope
    parts.message.textContent = item.message ?? ''
    parts.time.textContent = this.context.siteTime().stamp(item.at, this.context.clock())
    parts.time.dateTime = new Date(item.at).toISOString()
    parts.state.textContent = item.state
    parts.ack.hidden = item.state !== 'raised'
    parts.ack.disabled = false
    parts.ack.textContent = 'Acknowledge'
    parts.note.textContent = ''
    parts.note.classList.remove('error')
  }
}

/**
 * Every setpoint event of the site, newest first: the plant-wide log. Acting on a proposal is the
 * setpoint panel's (tuning.js), beside the equipment's current value and savings.
 */
export class SetpointFeed {
  constructor(list, context) {
    this.list = list
    this.context = context
    this.rows = new Map()
  }

  render(entries) {
    reconcile(
      this.list,
      entries,
      this.rows,
      (entry) => this.create(entry),
      (row, entry) => this.update(row, entry),
    )
  }

  clear() {
    this.rows.clear()
    this.list.replaceChildren()
  }

  create(entry) {
    const row = el('li', 'event setpoint')
    row.dataset.id = entry.item.id
    const parts = {
      name: el('strong', 'kind'),
      where: el('span', 'where'),
      change: el('p', 'message'),
      time: el('time'),
      status: el('span', 'state'),
    }
    const head = el('div', 'head')
    head.append(parts.name, parts.where, parts.time)
    const side = el('div', 'side')
    side.append(parts.status)
    const body = el('div', 'body')
    body.append(head, parts.change)
    row.append(body, side)
    row.parts = parts
    return row
  }

  update(row, entry) {
    const { item } = entry
    const { parts } = row
    row.dataset.status = item.status
    parts.name.textContent = item.name
    parts.where.textContent = this.context.where(item.scope)
    parts.where.title = item.scope
    const mode = item.mode === 'advise' ? 'advice' : item.mode
    const change = typeof item.to === 'number' ? `${item.from} → ${item.to} ` : ''
    parts.change.textContent = `${change}(${mode})${item.reason ? `: ${item.reason}` : ''}`
    parts.time.textContent = this.context.siteTime().stamp(item.at, this.context.clock())
    parts.status.textContent = item.status
  }
}

/**
 * Equipment idle right now: the open idle alerts (raised or acked) with the power at the raise and
 * an estimate of the energy wasted so far. The estimate is that power times the time since the
 * episode began by the site clock; the exact figure (`wastedWh`) comes with the clear.
 */
export class IdleList {
  constructor(list, more, context) {
    this.list = list
    this.more = more
    this.context = context
    this.limit = 50
  }

  render(openIdle) {
    const clock = this.context.clock()
    const items = [...openIdle].sort((a, b) => (b.data?.powerW ?? 0) - (a.data?.powerW ?? 0))
    const shown = items.slice(0, this.limit)
    const fragment = document.createDocumentFragment()
    for (const alert of shown) {
      const powerW = Number(alert.data?.powerW ?? 0)
      const idleMs = clock === undefined ? 0 : Math.max(0, clock - alert.since)
      const row = el('li', 'idle-item')
      row.dataset.id = alert.id
      row.dataset.state = alert.state
      const where = el('span', 'where', this.context.where(alert.scope))
      where.title = alert.scope
      row.append(
        where,
        el('span', 'num', fmt.power(powerW)),
        el('span', 'num', fmt.duration(idleMs)),
        el('span', 'num wasted', `≈ ${fmt.kWh((powerW * idleMs) / 3_600_000)}`),
      )
      fragment.appendChild(row)
    }
    // At most `limit` small rows, rebuilt at most once a second (the site clock's pace).
    this.list.replaceChildren(fragment)
    this.more.textContent = items.length > shown.length ? `and ${items.length - shown.length} more` : ''
  }
}
