/**
 * A binary min-heap of (due time, session index): the engine's one timer asks it which
 * reconnects are due instead of each waiting session holding a timer of its own.
 */
export class DueQueue {
  private readonly due: number[] = []
  private readonly items: number[] = []

  get size(): number {
    return this.items.length
  }

  push(dueMs: number, item: number): void {
    const { due, items } = this
    let i = items.length
    due.push(dueMs)
    items.push(item)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (due[parent]! <= dueMs) break
      due[i] = due[parent]!
      items[i] = items[parent]!
      i = parent
    }
    due[i] = dueMs
    items[i] = item
  }

  /** The earliest item if it is due at `nowMs`, removed; otherwise undefined. */
  popDue(nowMs: number): number | undefined {
    const { due, items } = this
    if (items.length === 0 || due[0]! > nowMs) return undefined
    const top = items[0]!
    const lastDue = due.pop()!
    const lastItem = items.pop()!
    const n = items.length
    if (n === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && due[right]! < due[left]! ? right : left
      if (due[child]! >= lastDue) break
      due[i] = due[child]!
      items[i] = items[child]!
      i = child
    }
    due[i] = lastDue
    items[i] = lastItem
    return top
  }

  clear(): void {
    this.due.length = 0
    this.items.length = 0
  }
}
