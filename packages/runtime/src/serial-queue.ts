/**
 * Runs asynchronous tasks one at a time, in the order they were given: a read-modify-write of a
 * persisted file inside `run` sees the state every earlier task left (issue 12 finding 2). A task
 * that fails rejects its own promise only; the tasks after it still run.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve()

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task)
    this.tail = result.catch(() => {})
    return result
  }
}
