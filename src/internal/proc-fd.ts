import { closeSync, constants, fstatSync, openSync, statSync } from 'node:fs'

// Paths through descriptors (Linux): `/proc/self/fd/<fd>/<name>` is looked up in the directory
// that <fd> holds open (the kernel's magic link, as glibc's fchmodat does), so it is
// openat(fd, name), unlinkat(fd, name) and friends, which Node lacks. Whoever renames or swaps
// the directory's path afterwards changes nothing for a holder of the descriptor.

// Not in fs.constants. 010000000 on every Linux architecture Node runs on (only alpha, parisc
// and sparc differ).
export const O_PATH = 0o10000000

/** The path that the kernel looks up relative to the open directory `fd`. */
export function at(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`
}

let procFd: boolean | undefined

/** True where `/proc/self/fd/<fd>` reaches what <fd> holds: Linux with /proc mounted. */
export function procFdWorks(): boolean {
  if (procFd !== undefined) return procFd
  procFd = false
  if (process.platform !== 'linux') return false
  try {
    const fd = openSync('/', O_PATH | constants.O_DIRECTORY)
    try {
      const held = fstatSync(fd)
      const seen = statSync(at(fd))
      procFd = held.ino === seen.ino && held.dev === seen.dev
    } finally {
      closeSync(fd)
    }
  } catch {
    // No /proc (a bare chroot or container).
  }
  return procFd
}
