import { readdirSync, readFileSync } from 'node:fs'
import { isExitedState, statFields } from '../internal/proc-stat.js'
import { readLinuxStat } from './linux-proc.js'

/**
 * True if `pid` has exited and only waits to be reaped by its parent (Linux). The main
 * thread alone is not the process: one that called pthread_exit() shows as a zombie while
 * other threads still run, and a killed process's main thread turns zombie before its other
 * threads have finished their in-flight system calls. So every task must be a zombie.
 */
export function isZombie(pid: number): boolean {
  if (process.platform !== 'linux' || !isExitedState(readLinuxStat(pid)?.[0])) return false
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' // reaped meanwhile; else can't tell: alive
  }
  return tasks.every((tid) => {
    try {
      return isExitedState(statFields(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1'))[0])
    } catch (err) {
      // That thread is gone: ENOENT, or ESRCH when it was released between the listing and the read.
      const code = (err as NodeJS.ErrnoException).code
      return code === 'ENOENT' || code === 'ESRCH'
    }
  })
}
