import { chmodSync, lstatSync, readdirSync, rmdirSync, unlinkSync, type BigIntStats, type Dirent, type Stats } from 'node:fs'
import { join } from 'node:path'

// Windows removal of a temp dir: no /proc, no rm(1), and Node has no openat there,
// so each step goes by path, after an lstat of that very path. Links are never followed: an
// entry that lstat or its directory listing reports as a link (a symlink or junction: a reparse
// point) is removed as such, with one unlink, which libuv applies to the link itself, for a file
// link and a directory link alike. A directory is entered only when lstat says it is one, and
// it is listed again only while it is still the same (dev, ino). What is left to chance: a user
// who can rename entries inside the tree can swap one between its lstat and its removal (a few
// µs); in the per-user %TEMP% that is the tree's own user.

/** How many times a directory that keeps being refilled is emptied before giving up. */
const PASSES = 20

const code = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code

/** A file's identity from bigint stats: NTFS file ids take 64 bits. */
const keyOf = (stats: BigIntStats) => `${stats.dev}:${stats.ino}`

/**
 * Removes the directory at `path` and everything in it, after `check` accepts what lstat sees
 * there (it throws if that is not the directory created). Returns false if nothing was there.
 */
export function removeTreeByPath(path: string, check: (stats: Stats) => void): boolean {
  const stats = lstatSync(path, { throwIfNoEntry: false })
  if (!stats) return false
  check(stats)
  const root = lstatSync(path, { bigint: true, throwIfNoEntry: false })
  if (!root) return false
  emptyAndRemove(path, keyOf(root), false)
  return true
}

/** Empties the directory at `path` (identity `key`), then removes it. `inside`: it may be made writable. */
function emptyAndRemove(path: string, key: string, inside: boolean): void {
  for (let pass = 1; ; pass++) {
    let names: Dirent[]
    try {
      names = readdirSync(path, { withFileTypes: true })
    } catch (err) {
      if (code(err) === 'ENOENT') return
      throw err
    }
    // Still the directory we checked? (Swapped for a junction meanwhile: its listing is not ours.)
    const now = lstatSync(path, { bigint: true, throwIfNoEntry: false })
    if (!now) return
    if (keyOf(now) !== key || now.isSymbolicLink()) throw Object.assign(new Error(`${path} changed while it was being emptied; it was left alone`), { code: 'EREPLACED' })
    for (const dirent of names) removeEntry(join(path, dirent.name), dirent.isSymbolicLink())
    try {
      rmdirSync(path)
      return
    } catch (err) {
      const c = code(err)
      if (c === 'ENOENT') return
      if ((c === 'EPERM' || c === 'EACCES') && inside && pass === 1)
        chmodSync(path, 0o700) // read-only attribute
      else if ((c === 'ENOTEMPTY' || c === 'EEXIST') && pass < PASSES) continue
      else throw err
    }
  }
}

/** Removes whatever is at `path` inside the tree; `listedAsLink`: its directory entry says it is a link. */
function removeEntry(path: string, listedAsLink: boolean): void {
  const stats = lstatSync(path, { bigint: true, throwIfNoEntry: false })
  if (!stats) return
  if (listedAsLink || stats.isSymbolicLink() || !stats.isDirectory()) {
    try {
      // A file (libuv clears its read-only attribute first), a symlink or a junction: the entry itself.
      unlinkSync(path)
      return
    } catch (err) {
      const c = code(err)
      if (c === 'ENOENT') return
      // EPERM: a directory after all (swapped in since the lstat): handled below, by its lstat.
      if (c !== 'EPERM' && c !== 'EISDIR') throw err
      if (listedAsLink || stats.isSymbolicLink()) {
        rmdirSync(path) // a directory link that unlink refused: rmdir removes the link, never its target's contents
        return
      }
    }
    const again = lstatSync(path, { bigint: true, throwIfNoEntry: false })
    if (!again) return
    if (!again.isDirectory() || again.isSymbolicLink()) throw Object.assign(new Error(`${path} kept changing between a file and a directory; it was left alone`), { code: 'EBUSY' })
    emptyAndRemove(path, keyOf(again), true)
    return
  }
  emptyAndRemove(path, keyOf(stats), true)
}
