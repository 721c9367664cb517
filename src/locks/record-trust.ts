import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, realpathSync, statSync, unlinkSync, type Stats } from 'node:fs'
import { basename, dirname, isAbsolute } from 'node:path'
import { childProcess } from '../builtins.js'
import { at as atFd, procFdWorks } from '../internal/proc-fd.js'
import { procIsOurs } from '../owner/linux-proc.js'
import { shown } from '../owner/describe.js'
import type { Snapshot, SnapshotVerdict } from './lock-record.js'
import { slotNumber } from './slot-name.js'
import { pipeNameFor, pipeState } from './holder-pipe.js'

/**
 * The trust rule (docs/threat-model.md). A lock file says whatever its writer chose: in a shared
 * directory (`/tmp`) any user can plant a record naming any process, socket or keeper, with
 * that process's true start time (it is public in /proc). Who wrote a record is known only from
 * the file's owner, taken from `fstat` of the descriptor the record was read through. A record
 * is acted on only where its writer could have done the same thing itself:
 *
 * - a process is signalled, or counted as the holder's keeper, only if the writer is root or
 *   the process's real or saved uid is the writer's: kill(2)'s own rule for an unprivileged
 *   sender;
 * - a socket is connected to, or removed, only if it and its directory belong to the writer,
 *   the directory is private (no access for group or others, as exitguard makes it) and the
 *   socket is named after the record's token. It is reached through the directory's descriptor,
 *   so a directory swapped for a symlink after the check leads nowhere else.
 */

/** The real and saved uids of `pid` (those kill(2) compares), or null where they can't be read. */
function processUids(pid: number): { real: number; saved: number } | null {
  if (process.platform === 'linux') {
    if (!procIsOurs()) return null
    try {
      // "Uid:\treal\teffective\tsaved\tfilesystem"
      const match = /^Uid:\s+(\d+)\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))
      return match ? { real: Number(match[1]), saved: Number(match[2]) } : null
    } catch {
      return null
    }
  }
  if (process.platform === 'darwin') {
    try {
      const out = childProcess().execFileSync('ps', ['-o', 'ruid=,svuid=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      const [real, saved] = out.trim().split(/\s+/).map(Number)
      return Number.isInteger(real) && Number.isInteger(saved) ? { real: real!, saved: saved! } : null
    } catch {
      return null
    }
  }
  return null
}

/**
 * Null if a record written by `writerUid` may speak for the live process `pid` (root's file, or a
 * process its writer could signal); else why not, for people. `writerUid` null (no uids on this
 * OS) trusts: there is no second local user to tell apart.
 */
export function processDistrust(writerUid: number | null, pid: number): string | null {
  if (writerUid === null || writerUid === 0) return null
  const uids = processUids(pid)
  if (uids === null) return `the lock file belongs to uid ${writerUid}, and the user PID ${pid} runs as can't be read here`
  if (uids.real === writerUid || uids.saved === writerUid) return null
  return `the lock file belongs to uid ${writerUid}, but PID ${pid} runs as uid ${uids.real}: a record may only name processes its writer could signal itself (was it planted by another user?)`
}

/**
 * Why the record in `snapshot` must not be acted on (signalled, messaged, shown as running), or
 * null. Judged for a live local holder only: a dead one names nothing to act on but its socket,
 * which is checked where it is removed. The file's directory must not let anyone but its owner
 * and root replace it, and the holder must be a process the file's owner could signal.
 */
export function recordDistrust(snapshot: Snapshot, verdict: SnapshotVerdict): string | null {
  if (verdict.dead || verdict.foreign || (snapshot.kind !== 'record' && snapshot.kind !== 'pid')) return null
  const writer = writerOf(snapshot.stats)
  const file = fileDistrust(snapshot)
  if (file !== null) return file
  const path = pathDistrust(snapshot.path, writer)
  if (path !== null) return path
  // The holder has ended and its keeper (already checked by keeperHolds) is releasing.
  if (verdict.releasing) return null
  return processDistrust(writer, snapshot.owner.pid)
}

/**
 * Null if the file itself can only be its owner's words, for this very lock path; else why not:
 * writable by others (anyone could have written it), linked from elsewhere, or (for a record,
 * which says where it was written) moved or linked here from another lock.
 */
function fileDistrust(snapshot: Snapshot): string | null {
  if (process.platform === 'win32') return null
  const { stats, path, owner } = snapshot
  if ((stats.mode & 0o022) !== 0) return `the lock file is writable by others (mode ${(stats.mode & 0o777).toString(8)}), so anyone could have written this record`
  if (stats.nlink > 1) return `the lock file has ${stats.nlink} links, so it may be another lock's record linked here`
  if (snapshot.kind !== 'record') return null
  if (!owner.location) return "the record does not say which lock it was written for (an older exitguard), so it can't be told from a record moved here"
  if (!writtenFor(path, owner.location, owner.token)) {
    return `the record was written for another lock (${shown(owner.location.name)} in directory ${owner.location.dir}) and was moved or linked here`
  }
  return null
}

/**
 * True if `path` is where a record written for the lock `location` may be: the lock itself, one
 * of its slots (`<name>.slot<N>`) beside it, or its shared holder's record `<name>.readers/<token>`.
 */
function writtenFor(path: string, location: { dir: string; name: string }, token: string): boolean {
  const idOf = (dir: string) => {
    const stats = statSync(dir, { throwIfNoEntry: false })
    return stats ? `${stats.dev}:${stats.ino}` : null
  }
  const name = basename(path)
  const parent = dirname(path)
  if (name === location.name || slotNumber(location.name, name) !== null) {
    return idOf(parent) === location.dir
  }
  return name === token && basename(parent) === `${location.name}.readers` && idOf(dirname(parent)) === location.dir
}

/**
 * Null if nobody but the file's owner and root can change what the lock path leads to; else
 * why not. Every directory on the path, as given and as resolved, and every symlink on it, must
 * be the writer's or root's, and a directory others can write must be sticky (as /tmp is):
 * otherwise whoever can rename entries there can put another file, or another directory, at the
 * lock path (a record moved in, a symlink to /run/...).
 */
function pathDistrust(path: string, writerUid: number | null): string | null {
  if (writerUid === null) return null
  const seen = new Set<string>()
  let real: string
  try {
    real = realpathSync(dirname(path))
  } catch (err) {
    return `its directory ${dirname(path)} can't be checked (${(err as NodeJS.ErrnoException).code})`
  }
  for (const start of [dirname(path), real]) {
    for (let dir = start; !seen.has(dir); dir = dirname(dir)) {
      seen.add(dir)
      let stats: Stats
      try {
        stats = lstatSync(dir)
      } catch (err) {
        return `the directory ${dir} on its path can't be checked (${(err as NodeJS.ErrnoException).code})`
      }
      if (stats.uid !== writerUid && stats.uid !== 0)
        return `${stats.isSymbolicLink() ? 'the symlink' : 'the directory'} ${dir} on its path belongs to uid ${stats.uid}, who can change what the path leads to`
      // Group- or world-writable without the sticky bit: anyone there can rename entries over it.
      if (!stats.isSymbolicLink() && (stats.mode & 0o022) !== 0 && (stats.mode & 0o1000) === 0) {
        return `the directory ${dir} on its path (mode ${(stats.mode & 0o7777).toString(8)}) lets other users replace entries in it (no sticky bit)`
      }
    }
  }
  return null
}

/** The owner of a file as `fstat` gave it, or null where the OS has no uids (Windows). */
export function writerOf(stats: { uid: number }): number | null {
  return process.platform === 'win32' ? null : stats.uid
}

/** The socket a record names, checked: reach it through `path`, then `close()`. */
export interface CheckedSocket {
  /** The socket, looked up through the held directory (`/proc/self/fd/N/<name>` on Linux). */
  path: string
  close(): void
}

/**
 * - a CheckedSocket: the socket passes the trust rule;
 * - 'none': the record names no socket, or it is gone;
 * - 'denied': its directory can't be entered by this user (another user's private one), so it
 *   can't be reached from here either;
 * - { untrusted }: it fails the rule, and why.
 */
export type SocketCheck = CheckedSocket | 'none' | 'denied' | { untrusted: string }

/** Opens the directory of the socket `owner` names and checks both against the trust rule. */
export function checkSocket(owner: { token: string; socket?: string | null | undefined }, writerUid: number | null): SocketCheck {
  const path = owner.socket
  if (!path) return 'none'
  const untrusted = (why: string) => ({ untrusted: `the message socket ${path} named in the lock record ${why}` })
  // Windows: a named pipe has no directory or owner uid to check (Windows has no uids, see
  // writerOf); only the record's own pipe, named after its token, and only while it is there.
  if (process.platform === 'win32') {
    if (path !== pipeNameFor(owner.token)) return untrusted(`is not the pipe named after the record's token (${pipeNameFor(owner.token)})`)
    return pipeState(owner.token) === 'there' ? { path, close() {} } : 'none'
  }
  if (!isAbsolute(path) || basename(path) !== `${owner.token}.sock`) return untrusted(`is not named after the record's token (${owner.token}.sock)`)
  let fd: number
  try {
    fd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return 'none'
    if (code === 'EACCES' || code === 'EPERM') return 'denied'
    return untrusted(`is not in a directory (${code})`)
  }
  try {
    const dir = fstatSync(fd)
    if (writerUid !== null && dir.uid !== writerUid) return untrusted(`is in a directory of uid ${dir.uid}, not of the lock file's owner (uid ${writerUid})`)
    if ((dir.mode & 0o077) !== 0) return untrusted(`is in a directory others can enter (mode ${(dir.mode & 0o777).toString(8)})`)
    // Through the held directory where /proc allows; else the name again, checked a moment before.
    const at = procFdWorks() ? atFd(fd, basename(path)) : path
    const socket = lstatSync(at, { throwIfNoEntry: false })
    if (!socket) return 'none'
    if (!socket.isSocket()) return untrusted('is not a socket')
    if (writerUid !== null && socket.uid !== writerUid) return untrusted(`belongs to uid ${socket.uid}, not to the lock file's owner (uid ${writerUid})`)
    const held = fd
    fd = -1 // the caller closes it
    return { path: at, close: () => closeSync(held) }
  } catch (err) {
    return untrusted(`can't be checked (${(err as NodeJS.ErrnoException).code})`)
  } finally {
    if (fd !== -1) closeSync(fd)
  }
}

/**
 * Removes the socket a dead holder left (SIGKILL), once its lock has been taken over or
 * reaped, only if it passes the trust rule against the lock file's owner. Never throws;
 * returns whether it removed it. (Where the holder had a keeper, the keeper removes it.)
 */
export function removeDeadSocket(owner: { token: string; socket?: string | null | undefined }, writerUid: number | null): boolean {
  if (process.platform === 'win32') return false
  const checked = checkSocket(owner, writerUid)
  if (typeof checked === 'string' || 'untrusted' in checked) return false
  try {
    unlinkSync(checked.path)
    return true
  } catch {
    return false
  } finally {
    checked.close()
  }
}
