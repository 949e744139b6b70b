// `node --import <this file>` in a benchmark's child process that does the work (`plantwatt up`
// in bench:up-load, the broker in bench:broker): with PLANTWATT_LOOP_DELAY_DIR set, the process
// measures its own event-loop delay (monitorEventLoopDelay, 1 ms) and answers the parent's
// SIGUSR2 marks in PLANTWATT_LOOP_DELAY_DIR/loop-delay-<pid>.ndjson (answerLoopDelayMarks). Set in
// the environment, it reaches every process of a multi-process run, each in its own file.

import { answerLoopDelayMarks, loopDelayMarkFile } from '../src/loop-delay.ts'

const directory = process.env.PLANTWATT_LOOP_DELAY_DIR
if (directory) answerLoopDelayMarks(loopDelayMarkFile(directory, process.pid))
