/** Runs `fn` after `delayMs` of wall time and returns how to cancel it. */
export type Schedule = (fn: () => void, delayMs: number) => () => void

/** The default Schedule: a setTimeout that never keeps the process alive on its own. */
export const unrefTimeout: Schedule = (fn, delayMs) => {
  const timer = setTimeout(fn, delayMs)
  timer.unref()
  return () => clearTimeout(timer)
}

/**
 * An unref'd timer whose callback runs after the I/O of the turn it fires in (setImmediate): when
 * the loop was busy past the due time, what arrived meanwhile is handled first. The live pacing
 * uses it on both sides: the processor's batch carries the clock of readings that came in during a
 * long turn, and the gateway sends a frame held for its second with the figures of a batch that
 * came in during a stall, not with the batch's before it.
 */
export const timeoutAfterIo: Schedule = (fn, delayMs) => {
  let immediate: NodeJS.Immediate | undefined
  const timer = setTimeout(
    () => {
      immediate = setImmediate(fn)
    },
    Math.max(0, delayMs),
  )
  timer.unref()
  return () => {
    clearTimeout(timer)
    if (immediate !== undefined) clearImmediate(immediate)
  }
}

/**
 * One timer for the earliest of many due times (the live publisher's sites waiting for their
 * interval, the gateway's frames held for their second): `at(dueAt)` arms it unless it already
 * fires as early, and when it fires `wake` runs, which calls `at` again for whatever still waits.
 * So there is never more than one timer, however many things wait.
 */
export class EarliestWake {
  private armed: { dueAt: number; cancel: () => void } | undefined

  constructor(
    private readonly schedule: Schedule,
    private readonly now: () => number,
    private readonly wake: () => void,
  ) {}

  at(dueAt: number): void {
    if (this.armed && this.armed.dueAt <= dueAt) return
    this.armed?.cancel()
    const armed = { dueAt, cancel: () => {} }
    armed.cancel = this.schedule(
      () => {
        if (this.armed !== armed) return
        this.armed = undefined
        this.wake()
      },
      Math.max(0, dueAt - this.now()),
    )
    this.armed = armed
  }

  cancel(): void {
    this.armed?.cancel()
    this.armed = undefined
  }
}
