// Loaded into the `plantwatt up` child of `pnpm bench:up-load` (node --import): measures the
// event-loop delay of the process that does the work, from inside it, with Node's
// monitorEventLoopDelay at 1 ms resolution (two timers of 1 ms: a small cost the run includes).
// The bench marks its phases with SIGUSR2 (SIGUSR1 belongs to the inspector); at each mark one
// JSON line is appended to PLANTWATT_LOOP_DELAY_FILE: the window since the previous mark, and the
// run since the first mark (exact percentiles over the whole load, which per-window figures
// cannot give).

import { appendFileSync } from 'node:fs'
import { startLoopDelayMonitor } from '@plantwatt/runtime'

const file = process.env.PLANTWATT_LOOP_DELAY_FILE
if (file) {
  const window = startLoopDelayMonitor(1)
  const run = startLoopDelayMonitor(1)
  let mark = 0
  process.on('SIGUSR2', () => {
    mark++
    const line = { pid: process.pid, mark, atMs: Date.now(), window: window.summary(), run: run.summary() }
    appendFileSync(file, `${JSON.stringify(line)}\n`)
    window.reset()
    if (mark === 1) run.reset()
  })
}
