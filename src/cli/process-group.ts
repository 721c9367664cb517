import { readdirSync, readFileSync } from 'node:fs'
import { readStartTime } from '../owner/start-time.js'
import { isExitedState, statFields } from '../internal/proc-stat.js'

/**
 * `exitguard run --group`: the command leads a process group of its own (PGID = its PID), and
 * what it leaves running in that group (`sh -c 'job &'`) is stopped with it, so that the lock
 * is released only once no process of the group is left. A process that leaves the group
 * (setsid, setpgid: a daemon) is not followed.
 */

/**
 * True while the group `pgid`, whose leader started at `leaderStart`, has a process that runs
 * (not a zombie). While any process is in a group, its number can't be given to a new process;
 * once the group is empty it can, so a leader PID with another start time is someone else's group.
 */
export function groupRuns(pgid: number, leaderStart: string | null): boolean {
  const leader = readStartTime(pgid)
  if (leader !== null && leaderStart !== null && leader !== leaderStart) return false
  if (process.platform !== 'linux') return signalGroup(pgid, 0)
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) > 57) continue // not a PID
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1')
    } catch {
      continue // ended meanwhile
    }
    const [state, , group] = statFields(stat)
    if (Number(group) === pgid && !isExitedState(state)) return true
  }
  return false
}

/** Sends `signal` to the whole group; false if it has no process (ESRCH). One we may not signal (EPERM) counts as there. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Once the leader has ended: SIGTERM to the group, SIGKILL once `graceMs` have passed, then waits
 * until no process of it runs, however long (the same rule as the keeper's: the lock is held
 * until then). Checks every 20 ms, backing off to 1 s after SIGKILL.
 */
/** Monotonic ms: a wall clock set back would stretch the grace period. */
const nowMs = () => Number(process.hrtime.bigint()) / 1e6

export async function stopGroup(pgid: number, leaderStart: string | null, graceMs: number): Promise<void> {
  if (!groupRuns(pgid, leaderStart)) return
  signalGroup(pgid, 'SIGTERM')
  const from = nowMs()
  let killed = false
  for (let pause = 20; groupRuns(pgid, leaderStart); ) {
    if (!killed && nowMs() - from >= graceMs) {
      signalGroup(pgid, 'SIGKILL')
      killed = true
    }
    await new Promise((resolve) => setTimeout(resolve, pause))
    if (killed) pause = Math.min(pause * 2, 1000)
  }
}
