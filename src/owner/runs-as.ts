import { isExitedState } from '../internal/proc-stat.js'
import { procIsOurs, readLinuxStat } from './linux-proc.js'
import { hostStartTime, readStartTime } from './start-time.js'

/**
 * True while `pid` runs (a zombie does not) with `startTime`, in readStartTime's terms: the test
 * a record's co-holder (its keeper) must pass to hold a lock.
 */
export function runsAs(pid: number, startTime: string): boolean {
  if (process.platform !== 'linux') return pidExists(pid) && readStartTime(pid) === startTime
  if (!procIsOurs()) return pidExists(pid) // another namespace's /proc: only kill(2) speaks for our PIDs
  const fields = readLinuxStat(pid)
  return fields !== null && !isExitedState(fields[0]) && hostStartTime(fields[19]) === startTime
}

/** `kill(pid, 0)`: ESRCH means no such process; EPERM means it exists under another user. */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}
