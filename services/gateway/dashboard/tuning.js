// The setpoint panel (issue 15): one card per tuned equipment with its current setpoint, mode,
// status and the reason of its latest step, the energy and CO2 tuning saved, its recent setpoint
// events, and, in `advise` mode, the open proposal with Approve / Reject. The cards start from
// GET /api/v1/setpoints and follow the `setpoints` channel (CONTRACT.md §5) at once; the savings
// are only in the list, which is fetched again (at most every few seconds) after events.

import * as fmt from './format.js'

/** Cards drawn: proposals first, then holds, then the rest; past this a count says how many more. */
const MAX_CARDS = 40
const RECENT = 5
/** Statuses after which a proposal is no longer open. */
const CLOSES_PROPOSAL = new Set(['approved', 'sent', 'applied', 'rejected', 'failed', 'reverted'])
const ORDER = { proposed: 0, held: 1 }

function el(tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

const value = (v, unit = '') => (typeof v === 'number' ? `${Number(v.toFixed(2))}${unit}` : '—')

export class TuningPanel {
  /**
   * @param {HTMLElement} list
   * @param {HTMLElement} more
   * @param {{where: (scope: string) => string, siteTime: () => object, clock: () => number | undefined}} context
   * @param {(id: string, action: 'approve' | 'reject', button: HTMLButtonElement) => void} onAction
   */
  constructor(list, more, context, onAction) {
    this.list = list
    this.more = more
    this.context = context
    this.onAction = onAction
    /** scope → the tuner as last known, with its recent events by id (newest last). */
    this.tuners = new Map()
    /** Messages of an action, by proposal id, until its next event. */
    this.notes = new Map()
  }

  clear() {
    this.tuners.clear()
    this.notes.clear()
    this.list.replaceChildren()
    this.more.textContent = ''
  }

  tuner(scope) {
    let tuner = this.tuners.get(scope)
    if (!tuner) {
      tuner = { scope, status: 'waiting', proposed: null, events: new Map() }
      this.tuners.set(scope, tuner)
    }
    return tuner
  }

  /** GET /api/v1/setpoints' `equipment`: the tuners' state as the processor answers it. */
  load(equipment) {
    for (const status of equipment) {
      if (typeof status?.scope !== 'string') continue
      const tuner = this.tuner(status.scope)
      const { history, ...fields } = status
      Object.assign(tuner, fields)
    }
  }

  /** A setpoint event from the channel (or a list): moves the card at once. */
  event(event) {
    const tuner = this.tuner(event.scope)
    tuner.events.delete(event.id)
    tuner.events.set(event.id, event)
    while (tuner.events.size > RECENT) tuner.events.delete(tuner.events.keys().next().value)
    if (event.mode) tuner.mode = event.mode
    if (typeof tuner.setpoint !== 'string' && event.name) tuner.setpoint = event.name
    this.notes.delete(event.id)
    if (event.status === 'proposed') {
      tuner.proposed = { id: event.id, to: event.to, from: event.from }
      tuner.status = 'proposed'
    } else if (CLOSES_PROPOSAL.has(event.status) && tuner.proposed?.id === event.id) {
      tuner.proposed = null
      if (tuner.status === 'proposed') tuner.status = 'tuning'
    }
    if (event.status === 'applied') {
      tuner.current = event.to
      if (tuner.status !== 'proposed') tuner.status = 'tuning'
    }
    if (event.status === 'held') {
      tuner.status = 'held'
      tuner.heldReason = event.reason
    }
  }

  /** Whether every tuner known says `mode` (after PUT /api/v1/tuning). */
  allInMode(mode) {
    for (const tuner of this.tuners.values()) if (tuner.mode !== mode) return false
    return true
  }

  actionMessage(id, text, isError) {
    this.notes.set(id, { text, isError })
  }

  render() {
    const all = [...this.tuners.values()].sort(
      (a, b) => (ORDER[a.status] ?? 2) - (ORDER[b.status] ?? 2) || a.scope.localeCompare(b.scope),
    )
    const shown = all.slice(0, MAX_CARDS)
    // A card keeps its buttons while the page is open: rebuilding a few dozen cards per render is
    // cheap, but a button under the pointer must not be swapped, so cards are reused by scope.
    const cards = new Map([...this.list.children].map((card) => [card.dataset.scope, card]))
    const nodes = shown.map((tuner) => this.card(cards.get(tuner.scope), tuner))
    this.list.replaceChildren(...nodes)
    this.more.textContent = all.length > shown.length ? `and ${all.length - shown.length} more tuned equipment` : ''
  }

  card(existing, tuner) {
    const card = existing ?? this.createCard(tuner.scope)
    const { parts } = card
    card.dataset.status = tuner.status ?? 'waiting'
    card.dataset.mode = tuner.mode ?? ''
    parts.where.textContent = this.context.where(tuner.scope)
    parts.where.title = tuner.scope
    parts.name.textContent = tuner.setpoint ?? ''
    parts.mode.textContent = tuner.mode === 'advise' ? 'advise' : (tuner.mode ?? '')
    parts.status.textContent = tuner.status ?? 'waiting'
    parts.current.textContent = value(tuner.current)
    parts.lastGood.textContent = value(tuner.lastGood)
    parts.start.textContent = value(tuner.start)
    parts.saved.textContent =
      typeof tuner.savedWh === 'number'
        ? `${fmt.energy(tuner.savedWh)}${typeof tuner.savedCo2G === 'number' ? ` · ${fmt.co2(tuner.savedCo2G)} CO₂` : ''}`
        : '—'
    const latest = [...tuner.events.values()].at(-1)
    parts.reason.textContent =
      tuner.status === 'held' && tuner.heldReason
        ? `Held: ${tuner.heldReason}`
        : latest
          ? `${latest.status}${latest.reason ? `: ${latest.reason}` : ''}`
          : ''
    const proposal = tuner.proposed
    parts.proposal.hidden = !proposal
    if (!proposal) {
      delete parts.proposal.dataset.id
      parts.note.textContent = ''
    } else {
      parts.proposal.dataset.id = proposal.id
      parts.change.textContent = `Proposed ${value(proposal.from ?? tuner.current)} → ${value(proposal.to)}`
      const note = this.notes.get(proposal.id)
      parts.note.textContent = note?.text ?? ''
      parts.note.classList.toggle('error', Boolean(note?.isError))
      for (const button of [parts.approve, parts.reject]) button.disabled = Boolean(note && !note.isError)
    }
    const events = [...tuner.events.values()].reverse().map((event) => {
      const row = el('li', 'tuner-event')
      row.dataset.id = event.id
      row.dataset.status = event.status
      const time = el('time', undefined, this.context.siteTime().stamp(event.at, this.context.clock()))
      time.dateTime = new Date(event.at).toISOString()
      const change = typeof event.to === 'number' ? ` ${value(event.from)} → ${value(event.to)}` : ''
      row.append(time, el('span', 'event-status', event.status), el('span', 'change', change))
      if (event.reason) row.title = event.reason
      return row
    })
    parts.events.replaceChildren(...events)
    return card
  }

  createCard(scope) {
    const card = el('li', 'tuner')
    card.dataset.scope = scope
    const parts = {
      where: el('strong', 'where'),
      name: el('span', 'setpoint-name'),
      mode: el('span', 'mode'),
      status: el('span', 'tuner-status'),
      current: el('span', 'value current'),
      lastGood: el('span', 'value last-good'),
      start: el('span', 'value start'),
      saved: el('span', 'value saved'),
      reason: el('p', 'reason'),
      proposal: el('div', 'proposal'),
      change: el('span', 'change'),
      approve: el('button', 'approve', 'Approve'),
      reject: el('button', 'reject', 'Reject'),
      note: el('p', 'note'),
      events: el('ol', 'tuner-events'),
    }
    for (const action of ['approve', 'reject']) {
      parts[action].type = 'button'
      parts[action].addEventListener('click', () => {
        const id = parts.proposal.dataset.id
        if (id) this.onAction(id, action, parts[action])
      })
    }
    const head = el('div', 'head')
    head.append(parts.where, parts.name, parts.mode, parts.status)
    const figures = el('dl', 'figures')
    for (const [label, node] of [
      ['Current', parts.current],
      ['Last good', parts.lastGood],
      ['Started at', parts.start],
      ['Saved', parts.saved],
    ]) {
      const dd = el('dd')
      dd.appendChild(node)
      const item = el('div')
      item.append(el('dt', undefined, label), dd)
      figures.appendChild(item)
    }
    parts.proposal.append(parts.change, parts.approve, parts.reject, parts.note)
    card.append(head, figures, parts.reason, parts.proposal, parts.events)
    card.parts = parts
    return card
  }
}
