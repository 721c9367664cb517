import { readFileSync, readlinkSync } from 'node:fs'
import { readStartTime } from '../owner/start-time.js'
import { statFields } from '../internal/proc-stat.js'

/** What the keeper watches: this thread (Linux) or this process (elsewhere). */
export interface OwnerTask {
  pid: number
  /** `/proc/<pid>` or, in a worker thread, `/proc/<pid>/task/<tid>`; "" where there is no /proc. */
  dir: string
  /** The start time the keeper compares (Linux: stat field 22; macOS: `ps -o lstart`). */
  startTime: string
}

/**
 * Identifies the calling thread for the keeper. A worker thread is its own task on Linux
 * (`/proc/thread-self` names it), so the keeper can prove that the thread ended while the
 * process lives on. Null where the owner can't be identified (no start time).
 */
export function ownerTask(): OwnerTask | null {
  const pid = process.pid
  if (process.platform === 'linux') {
    try {
      // "<pid>/task/<tid>", read from the calling thread.
      const self = readlinkSync('/proc/thread-self')
      const stat = readFileSync('/proc/thread-self/stat', 'latin1')
      const startTime = statFields(stat)[19]
      if (!startTime) return null
      const [, procPid, tid] = /^(\d+)\/task\/(\d+)$/.exec(self) ?? []
      // A /proc of another PID namespace (`unshare --pid` without its own /proc mount) numbers
      // this process differently: every PID the keeper would read there names someone else.
      if (Number(procPid) !== pid) return null
      return { pid, dir: tid && Number(tid) !== pid ? `/proc/${pid}/task/${tid}` : `/proc/${pid}`, startTime }
    } catch {
      return null // /proc not mounted: no proof of death possible, so no keeper
    }
  }
  const startTime = readStartTime(pid)
  return startTime === null ? null : { pid, dir: '', startTime }
}
