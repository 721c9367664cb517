import { spawnSync } from 'node:child_process'
import { closeSync, constants, existsSync, fchmodSync, openSync, readdirSync, rmSync, rmdirSync, unlinkSync } from 'node:fs'
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
  // With subdirectories, a walk by path name can be fooled: a subdirectory swapped for a symlink
  // between the check and the unlinks inside it sends them to the link's target. Node's rmSync
  // walks by path; rm(1) walks with openat/unlinkat and O_NOFOLLOW, so nothing is followed.
  if (rmTool && hasSubdirectory(path)) return removeWithRm(path)
  try {
    // Only files and links here: unlinking them never follows a link.
    rmSync(path, { recursive: true, force: true })
    return true
  } catch (err) {
    const c = code(err)
    if (c !== 'EACCES' && c !== 'EPERM') throw err
  }
  makeDirsWritable(path)
  rmSync(path, { recursive: true, force: true })
  return true
}

const rmTool = process.platform === 'win32' ? null : ['/bin/rm', '/usr/bin/rm'].find((p) => existsSync(p)) ?? null

function hasSubdirectory(path: string): boolean {
  // Dirent types come from the directory entry (d_type): a symlink to a directory is not one.
  return readdirSync(path, { withFileTypes: true }).some((entry) => entry.isDirectory())
}

function removeWithRm(path: string): boolean {
  const run = () => spawnSync(rmTool!, ['-rf', '--', path], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
  let result = run()
  if (result.status !== 0 && existsSync(path)) {
    // A read-only subdirectory (0500) can't have its entries unlinked by a non-root owner.
    makeDirsWritable(path)
    result = run()
  }
  if (result.status !== 0 && existsSync(path)) {
    const message = (result.stderr || result.error?.message || `rm exited with ${result.status}`).trim()
    throw Object.assign(new Error(message), { code: /Permission denied/.test(message) ? 'EACCES' : 'EIO' })
  }
  return true
}

function makeDirsWritable(dir: string): void {
  try {
    // Through a descriptor opened with O_NOFOLLOW: a directory swapped for a symlink is not changed.
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
    try {
      fchmodSync(fd, 0o700)
    } finally {
      closeSync(fd)
    }
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) makeDirsWritable(join(dir, entry.name))
    }
  } catch (err) {
    // Not ours to fix (or gone, or swapped for a link): the removal that follows reports what matters.
    const c = code(err)
    if (c !== 'ENOENT' && c !== 'EPERM' && c !== 'EACCES' && c !== 'ELOOP' && c !== 'ENOTDIR') throw err
  }
}
