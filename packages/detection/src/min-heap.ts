// A binary min-heap on a key and a tie-breaker (both numbers), values alongside. Used for offline
// deadlines; small and allocation-light (parallel arrays, no per-entry objects).

export class MinHeap<V> {
  private keys: number[] = []
  private ties: number[] = []
  private values: V[] = []

  get size(): number {
    return this.keys.length
  }

  peekKey(): number | undefined {
    return this.keys[0]
  }

  push(key: number, tie: number, value: V): void {
    const { keys, ties, values } = this
    let i = keys.length
    keys.push(key)
    ties.push(tie)
    values.push(value)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(key, tie, keys[parent]!, ties[parent]!)) break
      keys[i] = keys[parent]!
      ties[i] = ties[parent]!
      values[i] = values[parent]!
      i = parent
    }
    keys[i] = key
    ties[i] = tie
    values[i] = value
  }

  /** Removes the least entry and returns its value (undefined when empty). */
  pop(): V | undefined {
    const { keys, ties, values } = this
    const n = keys.length
    if (n === 0) return undefined
    const top = values[0]
    const key = keys.pop()!
    const tie = ties.pop()!
    const value = values.pop()!
    if (n > 1) {
      let i = 0
      const m = n - 1
      for (;;) {
        let child = 2 * i + 1
        if (child >= m) break
        if (child + 1 < m && this.less(keys[child + 1]!, ties[child + 1]!, keys[child]!, ties[child]!)) child++
        if (!this.less(keys[child]!, ties[child]!, key, tie)) break
        keys[i] = keys[child]!
        ties[i] = ties[child]!
        values[i] = values[child]!
        i = child
      }
      keys[i] = key
      ties[i] = tie
      values[i] = value
    }
    return top
  }

  private less(k1: number, t1: number, k2: number, t2: number): boolean {
    return k1 < k2 || (k1 === k2 && t1 < t2)
  }
}
