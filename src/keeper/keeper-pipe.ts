import { childProcess } from '../builtins.js'
import { closeSync, constants, fstatSync, lstatSync, mkdtempSync, openSync, rmdirSync, unlinkSync, type Stats } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { ExitguardError, systemCode } from '../errors.js'
import { at, O_PATH, procFdWorks } from '../internal/proc-fd.js'

/** A pipe for the keeper's input: `read` goes to the keeper, `write` stays with the owner. */
export interface KeeperPipe {
  read: number
  write: number
}

const { O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY } = constants

/**
 * Makes a pipe from Node, which has no pipe(2): a FIFO in a private (0700) directory, opened
 * at both ends and unlinked at once, so nothing else can open it and nothing is left on disk.
 * Every open here returns at once, so no process ever waits on the FIFO: the owner holds a
 * writer before any reader is handed on, and the keeper gets an end already open (a keeper
 * that had to open it by name would wait for ever if the owner died first).
 * `write` is non-blocking (a stalled keeper must not hang the owner); `read` is blocking once it
 * is the keeper's stdin, as awk expects. Both are close-on-exec, as every descriptor Node opens.
 *
 * Whoever can write the keeper's input steers it (a forged `T` line for a file of theirs to
 * remove is enough), and the temp dir may be one another user can write: a TMPDIR that is not
 * sticky lets them rename our directory away and put one of theirs, with their FIFO, at its
 * name. So nothing is trusted by name. `viaFd` (Linux): the directory is made and opened
 * through the parent's descriptor, checked on its own descriptor (a directory, ours, mode 0700
 * or less) before anything goes in it, and the FIFO is made and opened through that
 * descriptor (`/proc/self/fd/<fd>/in`): a rename of the path afterwards changes nothing.
 * By name (macOS: no /proc/self/fd): the same checks on every descriptor opened, so a swapped
 * directory or FIFO is refused rather than used; and no open there may block (a FIFO swapped in
 * without a writer would block a blocking open for ever), so `read` is opened non-blocking and
 * becomes blocking when it is handed to the keeper as its stdin (libuv clears O_NONBLOCK on a
 * child's fds 0-2, whose open file description the parent shares).
 *
 * Throws an error with a system code, or `EUNSAFE` where something found is not ours: there is
 * then no keeper, never one on an input someone else may hold.
 */
export function makeKeeperPipe(viaFd = procFdWorks()): KeeperPipe {
  const parent = viaFd ? openSync(tmpdir(), O_PATH | O_DIRECTORY) : -1
  try {
    const made = mkdtempSync(join(viaFd ? at(parent) : tmpdir(), 'exitguard-keeper-'))
    const shown = join(tmpdir(), basename(made))
    // O_NOFOLLOW: a symlink swapped in is refused here; a directory swapped in fails the check below.
    const dir = openSync(made, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
    let ours: Stats | null = null
    try {
      ours = mustBePrivate(fstatSync(dir), 'directory', shown)
      return openFifo(viaFd ? at(dir, 'in') : join(made, 'in'), viaFd ? dir : null, join(shown, 'in'))
    } finally {
      closeSync(dir)
      // By name, so only if the name still holds our directory: one swapped in is not ours to remove.
      if (ours) tidy(made, ours, rmdirSync)
    }
  } finally {
    if (parent !== -1) closeSync(parent)
  }
}

/** Makes the FIFO `fifo` (inside the directory `dir` holds, where given) and opens both ends, checked. */
function openFifo(fifo: string, dir: number | null, shown: string): KeeperPipe {
  // mkfifo gets the directory as its fd 3 and makes the FIFO through it: never by a name someone could swap.
  const made = childProcess().spawnSync('mkfifo', ['-m', '600', dir === null ? fifo : at(3, 'in')], { stdio: dir === null ? 'ignore' : ['ignore', 'ignore', 'ignore', dir], timeout: 10_000 })
  if (made.status !== 0) {
    throw new ExitguardError(
      systemCode(made.error, 'ESPAWN'),
      `Could not make the FIFO ${shown}: mkfifo ${made.error ? `failed (${made.error.message})` : `exited with ${made.status ?? made.signal}`}`,
      { path: shown },
    )
  }
  const opened: number[] = []
  let first: Stats | undefined
  const open = (flags: number) => {
    const fd = openSync(fifo, flags | O_NOFOLLOW)
    opened.push(fd)
    const stats = mustBePrivate(fstatSync(fd), 'FIFO', shown)
    first ??= stats
    if (stats.ino !== first.ino || stats.dev !== first.dev) throw unsafe(`${shown} is another FIFO than the one opened first: it was swapped meanwhile`, shown)
    return fd
  }
  try {
    // O_RDWR never blocks on a FIFO (Linux, macOS): with it open, the two real ends open at once.
    open(O_RDWR | O_NONBLOCK)
    const read = open(O_RDONLY | (dir === null ? O_NONBLOCK : 0))
    const write = open(O_WRONLY | O_NONBLOCK)
    opened.splice(1) // handed on: only the O_RDWR one is closed
    return { read, write }
  } finally {
    for (const fd of opened) closeSync(fd)
    // Through our directory, `in` is the FIFO we made; by name, only what we opened and checked.
    if (dir !== null) tidy(fifo, null, unlinkSync)
    else if (first) tidy(fifo, first, unlinkSync)
  }
}

/**
 * Removes `path` if it is `ours` (null: whatever is there), never throwing: a cleanup error must
 * not lose the pipe just made (nor leak its descriptors), and what is left is an empty 0700
 * directory or a FIFO no one else can open. Swapped between the check and the removal, the
 * name holds what its swapper could have removed anyway.
 */
function tidy(path: string, ours: Stats | null, remove: (path: string) => void): void {
  try {
    const there = lstatSync(path, { throwIfNoEntry: false })
    if (there && (!ours || (there.ino === ours.ino && there.dev === ours.dev))) remove(path)
  } catch {
    // left behind: see above
  }
}

/** `stats` if it is a `kind` owned by this process's user that no one else may enter, read or write. */
function mustBePrivate(stats: Stats, kind: 'directory' | 'FIFO', shown: string): Stats {
  const isKind = kind === 'directory' ? stats.isDirectory() : stats.isFIFO()
  if (!isKind) throw unsafe(`${shown} is not a ${kind}: something else was swapped in`, shown)
  const euid = process.geteuid?.()
  if (stats.uid !== euid) throw unsafe(`${shown} belongs to uid ${stats.uid}, not to this process's (${euid}): someone else made it`, shown)
  if ((stats.mode & 0o077) !== 0) throw unsafe(`${shown} has mode ${(stats.mode & 0o777).toString(8)}: others may reach it`, shown)
  return stats
}

function unsafe(message: string, path: string): ExitguardError {
  return new ExitguardError('EUNSAFE', message, { path })
}
