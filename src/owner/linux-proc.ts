import { readFileSync, readlinkSync } from 'node:fs'
import { statFields } from '../internal/proc-stat.js'

let procOurs: { pid: number; ours: boolean } | undefined

/**
 * True if /proc numbers processes as this process's PID namespace does. After `unshare --pid`
 * without a /proc mount of its own, /proc is the host's: `/proc/<pid>` of a PID from a record
 * (and from kill(2), which uses our numbering) is then some other process, whose start time
 * would "prove" the holder dead or name a stranger as it. Such a /proc is not read at all.
 */
export function procIsOurs(): boolean {
  if (procOurs?.pid !== process.pid) {
    let ours = false
    try {
      ours = readlinkSync('/proc/self') === String(process.pid)
    } catch {
      // no /proc
    }
    procOurs = { pid: process.pid, ours }
  }
  return procOurs.ours
}

/** `/proc/<pid>/stat` from field 3 (state) on, or null (also where /proc is another namespace's). */
export function readLinuxStat(pid: number): string[] | null {
  if (!procIsOurs()) return null
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, 'latin1'))
  } catch {
    return null
  }
}
