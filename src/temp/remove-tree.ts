import { childProcess } from '../builtins.js'
import { chmodSync, closeSync, constants, existsSync, fstatSync, lstatSync, openSync, readdirSync, rmdirSync, unlinkSync, type Stats } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { removeTreeByPath } from './remove-walk.js'
import { at, O_PATH, procFdWorks } from '../internal/proc-fd.js'

// Removal of temp entries that another user may be racing (see docs/threat-model.md).
//
// Rule: never resolve, after the check, a path that someone else can change. On Linux every
// step goes through descriptors: `/proc/self/fd/<fd>/<name>` is looked up in the directory that
// <fd> holds open (the kernel's magic link, as glibc's fchmodat does), so it is unlinkat(fd, name)
// and friends, which Node lacks. A directory is entered only through open(O_NOFOLLOW|O_DIRECTORY)
// of one name in a directory already held open: a symlink swapped in is never followed, and a
// directory swapped in is one its swapper could have renamed anyway. Modes change only through
// such a descriptor. On Windows, a walk by path that never follows a link (remove-walk.ts).
// Elsewhere (macOS, or no /proc), rm -rf does the walk: see removeWithRm.

/**
 * What a temp entry was when it was created. `dev` and `ino` name the inode; they are compared
 * before anything is removed, so an entry renamed away and replaced by another is left alone.
 */
export interface EntryIdentity {
  dev: number
  ino: number
  isDir: boolean
}

/**
 * The identity of what `stats` describes (fs.Stats from fstat right after creation, or lstat).
 * Typed structurally, so these declarations need no Node types (consumers may have none).
 */
export function identityOf(stats: { dev: number; ino: number; isDirectory(): boolean }): EntryIdentity {
  return { dev: stats.dev, ino: stats.ino, isDir: stats.isDirectory() }
}

/**
 * Removes the temp entry at `path` if it is still the one described by `entry`: a file (or
 * anything that is not a directory) is unlinked, a directory is removed with everything in it.
 * This is the one removal every temp guard, `reapOrphans` and the keeper use.
 *
 * Contract:
 * - Returns true if it removed the entry, false if nothing was at `path` (already gone).
 * - Throws, changing nothing, if something else is at `path`: code `EREPLACED` (another inode),
 *   `ENOTDIR` (a directory was expected) or `EISDIR` (a file was expected). The caller reports it
 *   and leaves it: it is not ours.
 * - Never follows a symlink, at `path` or anywhere inside, and never changes anything outside
 *   the entry, even while another user renames, swaps (`renameat2(RENAME_EXCHANGE)`) or fills
 *   entries inside it. Inside a directory, anything that user put there goes with it.
 * - Read-only directories inside are made writable (0700) first, through their descriptors.
 *   The directory holding `path` itself is never changed.
 * - Throws the errno error (`code` set) of a step that failed, e.g. `EACCES`, or `ENOTEMPTY` when
 *   entries keep appearing faster than they are removed. A partly removed tree stays partly
 *   removed; calling again carries on.
 * - Synchronous; spawns no process on Linux or Windows (it runs `rm` elsewhere, and where /proc is missing).
 *
 * What is left to chance is the last name lookup: between the identity check and the final
 * unlink or rmdir of `path` itself, whoever can rename entries in its parent directory (the
 * owner of the entry, in a sticky /tmp) can put another entry at that name, which is then
 * removed in its place: only an entry that they could have removed themselves, and for a
 * directory, only if it is empty. And `ino` numbers are reused: an entry that was deleted and
 * re-created by its owner can pass for ours; what is removed then is again that owner's.
 *
 * @example
 * const entry = identityOf(lstatSync(path)) // recorded at creation
 * // ... later, possibly in another process:
 * removeEntrySync(path, entry)
 */
export function removeEntrySync(path: string, entry: EntryIdentity): boolean {
  if (process.platform === 'win32') return entry.isDir ? removeByWalk(path, entry) : removeFile(path, entry)
  if (!procFdWorks()) return entry.isDir ? removeWithRm(path, entry) : removeFile(path, entry)
  const dir = dirname(path)
  const name = basename(path)
  for (let fresh = held?.path !== dir; ; fresh = true) {
    let parent: number
    try {
      parent = openParent(dir, fresh)
    } catch (err) {
      if (code(err) === 'ENOENT') return false
      throw err
    }
    try {
      if (entry.isDir ? removeDir(parent, name, entry, path) : removeFile(at(parent, name), entry)) return true
    } catch (err) {
      throw err instanceof WalkError ? err.at(path) : err
    }
    // Not there. If the parent came from the cache, its path may name a new directory since:
    // look again in that one before saying "already gone".
    if (fresh) return false
  }
}

// The exit cleanup removes thousands of entries, mostly from one directory, in one synchronous
// run: that directory is opened once per run (per turn of the event loop), not once per entry.
// Within the turn, the descriptor keeps naming the directory first opened, even if its path is
// swapped meanwhile; an entry is found there only if it is still the one created.
let held: { path: string; fd: number } | null = null

function openParent(path: string, fresh: boolean): number {
  if (held?.path === path && !fresh) return held.fd
  // O_PATH: the parent may be write-only (a drop box); a lookup in it needs only search permission.
  const fd = openSync(path, O_PATH | constants.O_DIRECTORY)
  if (held) closeSync(held.fd)
  else setImmediate(dropParent).unref()
  held = { path, fd }
  return fd
}

function dropParent(): void {
  if (held) closeSync(held.fd)
  held = null
}

const OPEN_DIR = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW
// How often a name that keeps being swapped between a directory and something else, or a
// directory that keeps being refilled, is tried before giving up with an error.
const TRIES = 20

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code
}

function notOurs(errCode: 'EREPLACED' | 'ENOTDIR' | 'EISDIR', found: string, entry: EntryIdentity): Error {
  const kind = entry.isDir ? 'directory' : 'file'
  return Object.assign(new Error(`${found} is there now, not the ${kind} that was created there; it was left alone`), { code: errCode })
}

function checkSame(stats: Stats, entry: EntryIdentity): void {
  // The type too: a freed inode number is soon reused, by a symlink as well as a file.
  const sameType = entry.isDir ? stats.isDirectory() : !stats.isDirectory() && !stats.isSymbolicLink()
  if (stats.dev === entry.dev && stats.ino === entry.ino && sameType) return
  if (entry.isDir && !stats.isDirectory()) throw notOurs('ENOTDIR', stats.isSymbolicLink() ? 'a symlink' : 'a file', entry)
  if (!entry.isDir && stats.isDirectory()) throw notOurs('EISDIR', 'a directory', entry)
  throw notOurs('EREPLACED', stats.isSymbolicLink() ? 'a symlink' : `another ${stats.isDirectory() ? 'directory' : 'file'}`, entry)
}

/** Unlinks the file at `where` if it is `entry`. */
function removeFile(where: string, entry: EntryIdentity): boolean {
  const stats = lstatSync(where, { throwIfNoEntry: false })
  if (!stats) return false
  checkSame(stats, entry)
  try {
    unlinkSync(where)
    return true
  } catch (err) {
    if (code(err) === 'ENOENT') return false
    throw err
  }
}

/** Removes the directory `name` (shown as `path`) in the open directory `parent`, if it is `entry`. */
function removeDir(parent: number, name: string, entry: EntryIdentity, path: string): boolean {
  // Most temp dirs are empty when they go: check, then one rmdir (it never removes a non-empty one).
  const stats = lstatSync(at(parent, name), { throwIfNoEntry: false })
  if (!stats) return false
  checkSame(stats, entry)
  try {
    rmdirSync(at(parent, name))
    return true
  } catch (err) {
    const c = code(err)
    if (c === 'ENOENT') return false
    if (c !== 'ENOTEMPTY' && c !== 'EEXIST') throw failure(c, path, err)
  }
  let fd: number
  try {
    fd = openSync(at(parent, name), OPEN_DIR)
  } catch (err) {
    const c = code(err)
    if (c === 'ENOENT') return false
    if (c !== 'ENOTDIR' && c !== 'ELOOP') throw err
    const stats = lstatSync(at(parent, name), { throwIfNoEntry: false })
    if (!stats) return false
    checkSame(stats, entry) // a file or a symlink there: ENOTDIR
    throw err
  }
  try {
    checkSame(fstatSync(fd), entry)
    // The parent is not ours: never chmod it (an rmdir refused there is the caller's to see).
    removeTree(parent, name, fd, false, path)
  } finally {
    closeSync(fd)
  }
  return true
}

/**
 * Empties the directory open as `fd` (`name` in the open directory `parent`, shown as `shown`),
 * then removes it. `parentIsOurs`: the parent is inside the tree, so it may be made writable.
 */
function removeTree(parent: number, name: string, fd: number, parentIsOurs: boolean, shown: string): void {
  for (let pass = 1; ; pass++) {
    for (const child of readNames(fd, shown)) removeChild(fd, child, shown)
    try {
      rmdirSync(at(parent, name))
      return
    } catch (err) {
      const c = code(err)
      if (c === 'ENOENT') return
      if (c === 'EACCES' && parentIsOurs && pass === 1) makeWritable(parent, err, dirname(shown))
      else if (c === 'ENOTEMPTY' || c === 'EEXIST') {
        // Refilled while we emptied it: go again, a few times.
        if (pass >= TRIES) throw failure(c, shown, `entries kept appearing in it while it was emptied (${TRIES} passes)`)
      } else throw failure(c, shown, err)
    }
  }
}

function readNames(fd: number, shown: string): string[] {
  try {
    return readdirSync(at(fd))
  } catch (err) {
    if (code(err) !== 'EACCES') throw failure(code(err), shown, err)
    makeWritable(fd, err, shown) // a directory without read permission (non-root)
    try {
      return readdirSync(at(fd))
    } catch (again) {
      throw failure(code(again), shown, again)
    }
  }
}

/** Removes the entry `name` of the open directory `dir` (inside the tree, shown as `shownDir`), whatever it is. */
function removeChild(dir: number, name: string, shownDir: string): void {
  const where = at(dir, name)
  let madeWritable = false
  for (let attempt = 1; ; attempt++) {
    try {
      // A file, a symlink (never its target), a socket...: one unlink. A directory: EISDIR.
      unlinkSync(where)
      return
    } catch (err) {
      const c = code(err)
      if (c === 'ENOENT') return
      if (c === 'EACCES' && !madeWritable) {
        makeWritable(dir, err, shownDir) // read-only directory (non-root): inside the tree, ours to change
        madeWritable = true
        continue
      }
      if (c !== 'EISDIR') throw failure(c, join(shownDir, name), err)
    }
    let fd: number
    try {
      fd = openSync(where, OPEN_DIR)
    } catch (err) {
      const c = code(err)
      if (c === 'ENOENT') return
      if (c !== 'ENOTDIR' && c !== 'ELOOP') throw failure(c, join(shownDir, name), err)
      // Swapped for a symlink or a file since unlink said "directory": unlink that instead.
      if (attempt >= TRIES) throw failure('EBUSY', join(shownDir, name), `it kept changing between a directory and something else (${TRIES} tries)`)
      continue
    }
    try {
      removeTree(dir, name, fd, true, join(shownDir, name))
    } finally {
      closeSync(fd)
    }
    return
  }
}

/** chmod 0700 of the directory open as `fd` (shown as `shown`), through the descriptor; `cause` if that fails. */
function makeWritable(fd: number, cause: unknown, shown: string): void {
  try {
    chmodSync(at(fd), 0o700)
  } catch {
    throw failure(code(cause), shown, cause)
  }
}

/** A step of the walk failed at `shown`: says so with the real path, not the /proc/self/fd one. */
class WalkError extends Error {
  constructor(
    readonly code: string,
    readonly shown: string,
    readonly why: string,
  ) {
    super(`${why}: ${shown}`)
  }

  /** The message as seen from the entry `path` being removed. */
  at(path: string): this {
    if (this.shown === path) this.message = this.why
    else this.message = `${this.why}: ${this.shown}`
    return this
  }
}

function failure(errCode: string | undefined, shown: string, cause: unknown): WalkError {
  const why =
    typeof cause === 'string'
      ? cause
      : errCode === 'EACCES' || errCode === 'EPERM'
        ? 'permission denied'
        : errCode === 'EROFS'
          ? 'the file system is read-only'
          : (cause as Error).message.replace(/, \w+ '\/proc\/self\/fd\/.*$/, '')
  return new WalkError(errCode ?? 'EIO', shown, why)
}

/** Windows: the directory `entry` at `path`, removed by a walk by path (remove-walk.ts). */
function removeByWalk(path: string, entry: EntryIdentity): boolean {
  try {
    return removeTreeByPath(path, (stats) => checkSame(stats, entry))
  } catch (err) {
    // The identity errors (EREPLACED, ENOTDIR) come as they are; an errno error with its code.
    if (err instanceof Error && !(err as NodeJS.ErrnoException).syscall) throw err
    throw failure(code(err), path, err).at(path)
  }
}

// Without /proc/self/fd: rm -rf walks with openat/unlinkat and never follows a symlink, neither
// one given on its command line nor one met inside (GNU rm uses fts with FTS_PHYSICAL and
// openat(O_NOFOLLOW); BSD and macOS rm use fts with FTS_PHYSICAL, which checks the dev and ino
// of each directory it enters against its lstat). The path itself is looked up again by rm
// after our identity check: whoever can rename entries in the parent can swap another entry in
// meanwhile, which rm then removes (see the contract above).
const rmTool = ['/bin/rm', '/usr/bin/rm'].find((p) => existsSync(p)) ?? null

function removeWithRm(path: string, entry: EntryIdentity): boolean {
  if (!checkDirAtPath(path, entry)) return false
  try {
    rmdirSync(path) // empty: one syscall, no process
    return true
  } catch (err) {
    const c = code(err)
    if (c === 'ENOENT') return false
    if (c !== 'ENOTEMPTY' && c !== 'EEXIST' && c !== 'EACCES' && c !== 'EPERM') throw err
  }
  if (!rmTool) throw Object.assign(new Error('it is not empty, and neither /proc nor rm(1) is there to remove it safely'), { code: 'ENOTSUP' })
  let result = runTool(rmTool, ['-rf', '--', path])
  if (result.status !== 0 && existsSync(path) && process.platform === 'darwin' && process.geteuid?.() !== 0 && checkDirAtPath(path, entry)) {
    // Read-only subdirectories (a non-root owner can't unlink in them). BSD chmod -R, like rm,
    // follows no symlink (-P is its default). GNU chmod -R follows one given on its command line,
    // so it is never used: elsewhere the EACCES is reported instead. Root needs no chmod.
    runTool('/bin/chmod', ['-R', 'u+rwx', '--', path])
    result = runTool(rmTool, ['-rf', '--', path])
  }
  if (result.status !== 0 && existsSync(path)) {
    const message = (result.stderr || result.error?.message || `rm exited with ${result.status}`).trim()
    throw Object.assign(new Error(message), { code: /Permission denied/.test(message) ? 'EACCES' : 'EIO' })
  }
  return true
}

/** True if the directory `entry` is at `path`, false if nothing is; throws if something else is. */
function checkDirAtPath(path: string, entry: EntryIdentity): boolean {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch (err) {
    const c = code(err)
    if (c === 'ENOENT') return false
    const stats = c === 'ENOTDIR' || c === 'ELOOP' || c === 'EACCES' ? lstatSync(path, { throwIfNoEntry: false }) : undefined
    if (stats) checkSame(stats, entry)
    if (c === 'EACCES' && stats) return true // ours, only unreadable: rm will say what it can't do
    throw err
  }
  try {
    checkSame(fstatSync(fd), entry)
    return true
  } finally {
    closeSync(fd)
  }
}

function runTool(tool: string, args: string[]) {
  return childProcess().spawnSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
}
