import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync } from 'node:fs'
import { ExitguardError, fsError } from '../errors.js'
import { at, procFdWorks } from '../internal/proc-fd.js'

/**
 * Where the shared holders of the lock `path` keep their records: `<path>.readers/<token>`, one
 * normal PID lock file each. An exclusive holder takes `path` first and then waits until no live
 * record is left here; a shared holder links its record here first and then checks `path`. With
 * those two orders, whichever comes second sees the other (see docs/shared-locks.md).
 *
 * A record in a directory someone else controls could be deleted by them, which would let an
 * exclusive holder in beside a shared one, so the directory must be a real directory (never a
 * symlink), owned by this user or root, that nobody else can write.
 */
export function readersDirOf(path: string): string {
  return `${path}.readers`
}

/** A shared holder's record name: its token (32 hex digits). */
export const READER_NAME = /^[0-9a-f]{32}$/

/**
 * The readers' directory of `path`, opened (and created 0755 if missing) and checked; the caller
 * closes the descriptor. `at(name)` is `name` in that very directory, looked up through the
 * descriptor where /proc allows it.
 */
export function openReadersDir(path: string): { fd: number; at(name: string): string; close(): void } {
  const dir = readersDirOf(path)
  let fd = -1
  // An exclusive holder removes the directory once empty: made again if it went in between.
  for (let tries = 0; fd === -1; tries++) {
    try {
      mkdirSync(dir, { mode: 0o755 })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(err, dir, "create the shared holders' directory", { dir: true })
    }
    try {
      fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' && tries < 20) continue
      if (code === 'ELOOP' || code === 'ENOTDIR') throw unsafe(dir, 'is a symbolic link or not a directory')
      throw fsError(err, dir, "open the shared holders' directory", { dir: true })
    }
  }
  try {
    const why = unsafeBecause(fstatSync(fd))
    if (why !== null) throw unsafe(dir, why)
  } catch (err) {
    closeSync(fd)
    throw err
  }
  const viaFd = procFdWorks()
  return { fd, at: (name) => (viaFd ? at(fd, name) : `${dir}/${name}`), close: () => closeSync(fd) }
}

/**
 * The shared holders' record files of `path` (absolute paths), or null if there is no directory.
 * `safe` says whether the directory passes the checks of openReadersDir (a real directory, this
 * user's or root's, nobody else can write). Only a safe one's dead records may be removed, and
 * only a safe one removed when empty: a planted symlink or another user's directory is read
 * (its live records still hold the lock: exclusion first) but never written to.
 */
export function readerFiles(path: string): { files: string[]; safe: boolean } | null {
  const dir = readersDirOf(path)
  // Most locks never have a shared holder. Saying so takes one lstat that throws nothing: an open
  // that fails with ENOENT costs five times as much (the error it builds), on every acquire.
  if (!mayExist(dir)) return null
  let fd: number
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
    // A symlink (ELOOP; ENOTDIR on Linux with O_DIRECTORY) or anything else: nobody's records.
    if (code === 'ELOOP' || code === 'ENOTDIR') return { files: [], safe: false }
    throw fsError(err, dir, 'list the shared holders of the lock', { dir: true })
  }
  try {
    const safe = unsafeBecause(fstatSync(fd)) === null
    const names = readdirSync(procFdWorks() ? at(fd) : dir)
    return { files: names.filter((name) => READER_NAME.test(name)).map((name) => `${dir}/${name}`), safe }
  } finally {
    closeSync(fd)
  }
}

/** False if nothing is at `path`; true if something is, or an error (EACCES) says that only an open can tell. */
function mayExist(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined
  } catch {
    return true
  }
}

/** Removes the readers' directory of `path` if it is empty; a reader that was about to link into it makes it again. */
export function removeReadersDirIfEmpty(path: string): void {
  try {
    rmdirSync(readersDirOf(path))
  } catch {
    // not empty, gone, or not ours: left alone
  }
}

/** Why a readers' directory with these stats could let someone else remove a shared holder's record, or null. */
function unsafeBecause(stats: { uid: number; mode: number }): string | null {
  const uid = process.geteuid?.()
  if (uid !== undefined && stats.uid !== uid && stats.uid !== 0) return `belongs to uid ${stats.uid}, who could remove a shared holder's record from it`
  // (Windows has no such mode bits: its directory modes always read 0o666.)
  if (process.platform !== 'win32' && (stats.mode & 0o022) !== 0) return `has mode ${(stats.mode & 0o777).toString(8)}: others could remove a shared holder's record from it`
  return null
}

function unsafe(dir: string, why: string): ExitguardError {
  return new ExitguardError('EUNSAFE', `The shared holders' directory ${dir} ${why}; exitguard will not use it. Remove it (as its owner or root), or use another lock path.`, { path: dir })
}
