import { childProcess } from '../builtins.js'
import { closeSync, constants, mkdtempSync, openSync, rmdirSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A pipe for the keeper's input: `read` goes to the keeper, `write` stays with the owner. */
export interface KeeperPipe {
  read: number
  write: number
}

/**
 * Makes a pipe from Node, which has no pipe(2): a FIFO in a private (0700) directory, opened
 * at both ends and unlinked at once, so nothing else can open it and nothing is left on disk.
 * Every open here returns at once, so no process ever waits on the FIFO: the owner holds a
 * writer before any reader is handed on, and the keeper gets an end already open (a keeper
 * that had to open it by name would wait for ever if the owner died first).
 * `write` is non-blocking (a stalled keeper must not hang the owner); `read` is blocking, as
 * awk expects. Both are close-on-exec, as every descriptor Node opens.
 */
export function makeKeeperPipe(): KeeperPipe | null {
  let dir: string
  try {
    dir = mkdtempSync(join(tmpdir(), 'exitguard-keeper-'))
  } catch {
    return null
  }
  const fifo = join(dir, 'in')
  let read = -1
  try {
    const made = childProcess().spawnSync('mkfifo', ['-m', '600', fifo], { stdio: 'ignore', timeout: 10_000 })
    if (made.status !== 0) return null
    // O_RDWR never blocks on a FIFO (Linux, macOS): it lets the two real ends open at once.
    const both = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)
    try {
      read = openSync(fifo, constants.O_RDONLY)
      return { read, write: openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK) }
    } catch {
      if (read !== -1) closeSync(read)
      return null
    } finally {
      closeSync(both)
    }
  } catch {
    return null
  } finally {
    try {
      unlinkSync(fifo)
    } catch {
      // never made
    }
    rmdirSync(dir)
  }
}
