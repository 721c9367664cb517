import { chmodSync, readdirSync, rmSync, rmdirSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code
}

/** Unlinks `path` (a symlink itself, never its target). False if it was already gone. */
export function removeFileSync(path: string): boolean {
  try {
    unlinkSync(path)
    return true
  } catch (err) {
    if (code(err) === 'ENOENT') return false
    throw err
  }
}

/**
 * Removes the directory `path` and everything in it, without following a
 * symlink anywhere (a link inside is removed, its target is not). Read-only
 * subdirectories are made writable first. False if it was already gone.
 * Throws ENOTDIR if `path` is no longer a directory: then it is not ours to remove.
 */
export function removeDirSync(path: string): boolean {
  try {
    // Most temp dirs are empty by the time they go: one syscall.
    rmdirSync(path)
    return true
  } catch (err) {
    const c = code(err)
    if (c === 'ENOENT') return false
    if (c !== 'ENOTEMPTY' && c !== 'EEXIST' && c !== 'EACCES' && c !== 'EPERM') throw err
  }
  try {
    // Node's recursive rm lstat()s each entry and unlinks symlinks: it never descends through one.
    rmSync(path, { recursive: true, force: true })
    return true
  } catch (err) {
    const c = code(err)
    if (c !== 'EACCES' && c !== 'EPERM') throw err
  }
  // A read-only subdirectory (0500) can't have its entries unlinked by a non-root owner.
  makeDirsWritable(path)
  rmSync(path, { recursive: true, force: true })
  return true
}

function makeDirsWritable(dir: string): void {
  try {
    chmodSync(dir, 0o700)
    // Dirent types come from the directory entry (d_type, or lstat when unknown), so a
    // symlink to a directory is not a directory here and is never chmod()ed or entered.
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) makeDirsWritable(join(dir, entry.name))
    }
  } catch (err) {
    // Not ours to fix (or gone): the rm that follows reports what matters.
    if (code(err) !== 'ENOENT' && code(err) !== 'EPERM' && code(err) !== 'EACCES') throw err
  }
}
