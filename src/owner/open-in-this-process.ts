import { fstatSync, readdirSync } from 'node:fs'

/**
 * True if a descriptor of this process refers to the file `stats` describes (same dev and
 * inode). A held PidLock keeps its lock file open, so this answers "does this process hold
 * that lock file?" for every thread (workers share the descriptor table) and every copy of
 * exitguard loaded (ESM and CommonJS), and whatever path the file was reached by. Cannot tell
 * (no /proc/self/fd or /dev/fd): true, so the file counts as held (fail closed).
 */
export function openInThisProcess(stats: { dev: number; ino: number }): boolean {
  let fds: string[]
  try {
    fds = readdirSync(process.platform === 'linux' ? '/proc/self/fd' : '/dev/fd')
  } catch {
    return true
  }
  for (const fd of fds) {
    try {
      const st = fstatSync(Number(fd))
      if (st.ino === stats.ino && st.dev === stats.dev) return true
    } catch {
      // closed meanwhile (e.g. the descriptor readdir itself used)
    }
  }
  return false
}
