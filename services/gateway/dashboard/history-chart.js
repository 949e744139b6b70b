// Charts of the history view: bars per bucket (an hour, a day, or a month of a year) and the
// 15-minute demand line with the month's peak marked. Hand-written SVG like chart.js: at most a
// few thousand points, redrawn only when the range or scope changes. Every bar carries its
// bucket's start and value as data attributes and a <title>, so a reader hovering it (and a test)
// sees the figure it stands for.

import { element, niceStep } from './chart.js'

const MARGIN = { left: 64, right: 12, top: 10, bottom: 22 }

function frame(svg) {
  const width = svg.clientWidth || 600
  const height = svg.clientHeight || 170
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  return { width, height, plotW: width - MARGIN.left - MARGIN.right, plotH: height - MARGIN.top - MARGIN.bottom }
}

/** Horizontal grid lines with labels, up to `max`; returns y(value). */
function yAxis(root, box, max, format, labelled) {
  const yStep = niceStep(max || 1, 4)
  const yMax = Math.ceil((max || 1) / yStep) * yStep
  const y = (v) => MARGIN.top + box.plotH - (v / yMax) * box.plotH
  const grid = element('g', { class: 'grid' }, root)
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    element('line', { x1: MARGIN.left, x2: box.width - MARGIN.right, y1: y(v), y2: y(v) }, grid)
    if (!labelled) continue
    element('text', { x: MARGIN.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, grid).textContent = format(v)
  }
  return y
}

function title(node, text) {
  element('title', {}, node).textContent = text
}

/**
 * Bars per slot ({from, to}: one bucket's interval). Series are drawn side by side, or with
 * `overlay` on top of one another at full width (idle energy inside the energy it is part of).
 */
export class SlotChart {
  /**
   * @param {SVGSVGElement} svg
   * @param {{series: {label: string, className: string, value: (b: object) => number}[],
   *   format: (v: number) => string, overlay?: boolean}} options
   */
  constructor(svg, options) {
    this.svg = svg
    this.options = options
  }

  /**
   * @param {{from: number, to: number}[]} slots in order
   * @param {(slot: {from: number}) => object | undefined} bucketOf
   * @param {(slot: {from: number}) => string} nameOf the slot's name in titles and axis labels
   */
  render(slots, bucketOf, nameOf) {
    const { svg, options } = this
    const box = frame(svg)
    const root = document.createDocumentFragment()
    let max = 0
    let count = 0
    for (const slot of slots) {
      const bucket = bucketOf(slot)
      if (!bucket) continue
      count++
      for (const s of options.series) max = Math.max(max, s.value(bucket))
    }
    const y = yAxis(root, box, max, options.format, count > 0)
    const slotW = box.plotW / Math.max(1, slots.length)
    const lanes = options.overlay ? 1 : options.series.length
    const barW = Math.max(1, (slotW * 0.8) / lanes)
    const labelEvery = Math.ceil(slots.length / Math.max(1, box.plotW / 56))
    const labels = element('g', { class: 'grid' }, root)
    const bars = element('g', { class: 'bars' }, root)
    slots.forEach((slot, i) => {
      const left = MARGIN.left + i * slotW
      if (i % labelEvery === 0) {
        const label = element('text', { x: left + slotW / 2, y: box.height - 6, 'text-anchor': 'middle' }, labels)
        label.textContent = nameOf(slot, true)
      }
      const bucket = bucketOf(slot)
      if (!bucket) return
      options.series.forEach((s, lane) => {
        const value = s.value(bucket)
        const x = left + slotW * 0.1 + (options.overlay ? 0 : lane * barW)
        const rect = element(
          'rect',
          {
            class: `bar ${s.className}`,
            x: x.toFixed(1),
            y: y(Math.max(0, value)).toFixed(1),
            width: barW.toFixed(1),
            height: Math.max(0, y(0) - y(Math.max(0, value))).toFixed(1),
            'data-t': slot.from,
            'data-value': value,
          },
          bars,
        )
        title(rect, `${nameOf(slot, false)} · ${s.label} ${options.format(value)}`)
      })
    })
    svg.replaceChildren(root)
  }
}

/**
 * The 15-minute demand as a line (kW per interval), with each month's peak as a dashed level over
 * the part of the range in that month and a dot on the interval that set it, when it is in range.
 */
export class DemandChart {
  constructor(svg, format) {
    this.svg = svg
    this.format = format
  }

  /**
   * @param {{t: number, kW: number}[]} points by t
   * @param {number} from
   * @param {number} to
   * @param {{from: number, to: number, kW: number, t: number}[]} peaks one per month, clipped to the range
   * @param {{t: number, label: string}[]} ticks
   * @param {(t: number) => string} nameOf
   */
  render(points, from, to, peaks, ticks, nameOf) {
    const box = frame(this.svg)
    const root = document.createDocumentFragment()
    let max = 0
    for (const point of points) max = Math.max(max, point.kW)
    for (const peak of peaks) max = Math.max(max, peak.kW)
    const y = yAxis(root, box, max, this.format, points.length > 0 || peaks.length > 0)
    const x = (t) => MARGIN.left + ((t - from) / (to - from)) * box.plotW
    const grid = element('g', { class: 'grid' }, root)
    for (const tick of ticks) {
      element('line', { x1: x(tick.t), x2: x(tick.t), y1: MARGIN.top, y2: MARGIN.top + box.plotH }, grid)
      element('text', { x: x(tick.t), y: box.height - 6, 'text-anchor': 'middle' }, grid).textContent = tick.label
    }
    // A step per quarter hour: each interval's average is level over the interval (and a lone
    // interval still shows). A missing interval breaks the line.
    let d = ''
    let previous = Number.NEGATIVE_INFINITY
    for (const point of points) {
      const command = point.t - previous > 15 * 60_000 ? 'M' : 'L'
      const level = y(point.kW).toFixed(1)
      d += `${command}${x(point.t).toFixed(1)},${level}L${x(point.t + 15 * 60_000).toFixed(1)},${level}`
      previous = point.t
    }
    if (d) element('path', { d, class: 'series demand', 'data-points': points.length }, root)
    for (const peak of peaks) {
      const level = element(
        'line',
        {
          class: 'month-peak',
          x1: x(peak.from),
          x2: x(peak.to),
          y1: y(peak.kW),
          y2: y(peak.kW),
          'data-kw': peak.kW,
          'data-t': peak.t,
        },
        root,
      )
      title(level, `Month's peak ${this.format(peak.kW)} at ${nameOf(peak.t)}`)
      if (peak.t >= from && peak.t < to) {
        const dot = element(
          'circle',
          { class: 'peak-point', cx: x(peak.t + 7.5 * 60_000), cy: y(peak.kW), r: 4, 'data-t': peak.t },
          root,
        )
        title(dot, `Month's peak ${this.format(peak.kW)} at ${nameOf(peak.t)}`)
      }
    }
    this.svg.replaceChildren(root)
  }
}
