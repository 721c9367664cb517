import { closeSync, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, constants } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { ExitguardError, fsError } from '../errors.js'

/**
 * Where a holder's socket lives. Connecting to a Unix socket needs search permission on
 * its directory, so a directory that only the holder's user can enter (0700, owned by it)
 * is what keeps other users out: the socket's own mode is not honoured everywhere, and
 * `/tmp` itself is open to all. The directory is short because `sun_path` is: 107 usable
 * bytes on Linux, 103 on macOS.
 */

/** The most bytes a socket path may have here (sun_path minus its NUL). */
export const MAX_SOCKET_PATH = process.platform === 'darwin' ? 103 : 107

/**
 * The default socket directory: `$XDG_RUNTIME_DIR/exitguard` when that is a private
 * directory of ours (systemd's per-user tmpfs), else `/tmp/exitguard-<uid>`. Not `os.tmpdir()`:
 * on macOS it is about 50 bytes long already, and TMPDIR may point anywhere.
 */
export function defaultSocketDir(): string {
  const uid = process.getuid?.() ?? 0
  const xdg = process.env['XDG_RUNTIME_DIR']
  if (xdg && isAbsolute(xdg)) {
    try {
      const stats = lstatSync(xdg)
      if (stats.isDirectory() && stats.uid === uid && (stats.mode & 0o077) === 0) return join(xdg, 'exitguard')
    } catch {
      // no such directory: fall back
    }
  }
  return `/tmp/exitguard-${uid}`
}

/**
 * Makes sure `dir` exists, is a real directory (never a symlink), is owned by this user
 * and is closed to everyone else. It is created 0700 if missing. `repair` (the default
 * directory) tightens a mode that lets others in; a directory named by the caller is
 * refused instead, since it is theirs to change. A directory owned by another user is
 * always refused: it may be a trap laid in `/tmp` before we came.
 */
export function ensurePrivateDir(dir: string, repair: boolean): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(err, dir, 'create the socket directory', { dir: true })
  }
  let fd: number
  try {
    // O_NOFOLLOW: a symlink planted at the name fails here instead of being entered.
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const link = code === 'ELOOP' || isSymlink(dir) // Linux says ENOTDIR for a symlink under O_DIRECTORY
      throw new ExitguardError(
        'EUNSAFE',
        `The socket directory ${dir} is ${link ? 'a symbolic link' : 'not a directory'}; exitguard will not put a socket there. Remove it, or choose another directory with the socketDir option.`,
        { path: dir },
      )
    }
    // Another user's private directory can't even be opened: it is not ours, which is what matters.
    const uid = process.getuid?.()
    const theirs = (code === 'EACCES' || code === 'EPERM') && uid !== undefined ? lstatSync(dir, { throwIfNoEntry: false }) : undefined
    if (theirs && theirs.uid !== uid) {
      throw new ExitguardError(
        'EUNSAFE',
        `The socket directory ${dir} belongs to uid ${theirs.uid}, not to this user (uid ${uid}); another user could read or replace the socket. Remove it (as its owner or root), or choose another directory with the socketDir option.`,
        { path: dir },
      )
    }
    throw fsError(err, dir, 'open the socket directory', { dir: true })
  }
  try {
    const stats = fstatSync(fd)
    const uid = process.getuid?.()
    if (uid !== undefined && stats.uid !== uid) {
      throw new ExitguardError(
        'EUNSAFE',
        `The socket directory ${dir} belongs to uid ${stats.uid}, not to this user (uid ${uid}); another user could read or replace the socket. Remove it (as its owner or root), or choose another directory with the socketDir option.`,
        { path: dir },
      )
    }
    if ((stats.mode & 0o077) !== 0) {
      if (!repair) {
        throw new ExitguardError(
          'EUNSAFE',
          `The socket directory ${dir} has mode ${(stats.mode & 0o777).toString(8)}: other users can enter it and connect. Make it private (chmod 700 ${dir}) or choose another directory.`,
          { path: dir },
        )
      }
      fchmodSync(fd, 0o700)
    }
  } finally {
    closeSync(fd)
  }
}

/** The socket path of the holder whose record has `token`; on Windows, a named pipe (untested). */
export function socketPathFor(dir: string, token: string): string {
  if (process.platform === 'win32') return `\\\\.\\pipe\\exitguard-${token}`
  const path = join(dir, `${token}.sock`)
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new ExitguardError(
      'ENAMETOOLONG',
      `The socket path ${path} is ${Buffer.byteLength(path)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH} here. Choose a shorter socketDir (the default is ${defaultSocketDir()}).`,
      { path },
    )
  }
  return path
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}
