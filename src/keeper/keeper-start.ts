import type { SpawnSyncOptionsWithStringEncoding } from 'node:child_process'
import { accessSync, closeSync, constants } from 'node:fs'
import type { Socket } from 'node:net'
import { delimiter, join } from 'node:path'
import { debuglog } from 'node:util'
import { childProcess } from '../builtins.js'
import { readStartTime } from '../owner/start-time.js'
import { makeKeeperPipe, type KeeperPipe } from './keeper-pipe.js'
import { KEEPER_AWK, KEEPER_SH, KEEPER_SH_CHILD, KEEPER_WAIT } from './keeper-program.js'
import type { OwnerTask } from './owner-task.js'

const debug = debuglog('exitguard')

/** A keeper process just started: who it is, and the only write end of its input. */
export interface StartedKeeper {
  pid: number
  startTime: string
  fd: number
  /** What holds `fd` open, if a handle does: destroyed when the keeper is found dead. */
  handle: Socket | null
}

const statFlag = () => (process.platform === 'linux' ? '-c' : '-f')

/**
 * The main thread's keeper: a child, started with an asynchronous spawn whose stdin is a socket
 * pair (Node's 'pipe'), so its input has no name anyone could open, and nothing is made on disk.
 * sh execs awk in place: the PID and start time spawn gives are the keeper's. One process start,
 * where the orphan below takes three (mkfifo; sh, which forks awk), each a fork of the whole Node
 * process waited for: ~10 ms of `exitguard run`'s start.
 *
 * A child is safe here, and only here: this thread is the process, whose event loop reaps the
 * keeper if it dies first; once the process has ended, init (or the nearest subreaper) does. Its
 * handles are unref'd, so it never keeps the process alive.
 */
export function startChildKeeper(task: OwnerTask): StartedKeeper | null {
  if (!onPath('awk')) {
    debug('keeper: its shell failed (awk not found)')
    return null
  }
  const child = childProcess().spawn('/bin/sh', ['-c', KEEPER_SH_CHILD, 'exitguard-keeper', KEEPER_AWK, task.dir, String(task.pid), task.startTime, statFlag(), KEEPER_WAIT], {
    // A new session: no terminal, no Ctrl-C, none of the owner's process-group signals.
    detached: true,
    // Never the owner's stdout/stderr: `out=$(node app.js)` must return when the owner ends.
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  child.on('error', (err) => debug('keeper: its shell failed (%s)', err.message))
  const input = child.stdin as (Socket & { _handle?: { fd?: number } }) | null
  const fd = input?._handle?.fd
  const startTime = child.pid !== undefined ? readStartTime(child.pid) : null
  if (child.pid === undefined || !input || typeof fd !== 'number' || fd < 0 || startTime === null) {
    input?.destroy()
    if (child.pid !== undefined) child.kill('SIGKILL')
    return null
  }
  // Node destroys a child's stdin when the child exits, closing the descriptor the owner writes
  // to by number: a number reused meanwhile would take the keeper's lines to another file. So it
  // is not the child's to close: the owner closes it when a write finds the keeper dead.
  ;(child as { stdin: unknown }).stdin = null
  input.on('error', () => {})
  input.unref()
  child.unref()
  return { pid: child.pid, startTime, fd, handle: input }
}

/**
 * A worker thread's keeper: never its child. A child of a worker's event loop stays a zombie
 * after that thread has ended, for as long as the process lives. So sh starts awk in the
 * background and exits, and is waited for with spawnSync: awk is an orphan from the start. Its
 * input is a FIFO only this process can open (keeper-pipe.ts), as Node has no pipe(2).
 */
export function startOrphanKeeper(task: OwnerTask): StartedKeeper | null {
  let pipe: KeeperPipe
  try {
    pipe = makeKeeperPipe()
  } catch (err) {
    debug('keeper: none, as no input pipe only this process can write could be made (%s: %s)', (err as NodeJS.ErrnoException).code, (err as Error).message)
    return null
  }
  let pid = 0
  try {
    const sh = childProcess().spawnSync('/bin/sh', ['-c', KEEPER_SH, 'exitguard-keeper', KEEPER_AWK, task.dir, String(task.pid), task.startTime, statFlag(), KEEPER_WAIT], {
      // (spawnSync honours `detached` as spawn does; @types/node leaves it out.)
      detached: true,
      stdio: [pipe.read, 'pipe', 'ignore'],
      encoding: 'latin1',
      timeout: 10_000,
    } as SpawnSyncOptionsWithStringEncoding)
    pid = sh.status === 0 ? Number(sh.stdout.trim()) : 0
    if (!(pid > 1)) debug('keeper: its shell failed (%s)', sh.error?.message ?? (sh.status === 127 ? 'awk not found' : `status ${sh.status}`))
  } finally {
    closeSync(pipe.read) // the keeper's end: the owner must not hold it (EPIPE tells a dead keeper)
  }
  const startTime = pid > 1 ? readStartTime(pid) : null
  if (startTime === null) {
    closeSync(pipe.write)
    return null
  }
  return { pid, startTime, fd: pipe.write, handle: null }
}

/** Whether sh's `exec NAME` would find it (an exec that fails would only show once the keeper is written to). */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || '.', name), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}
