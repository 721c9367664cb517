import type { SpawnSyncOptionsWithStringEncoding } from 'node:child_process'
import { closeSync, existsSync, writeSync } from 'node:fs'
import type { Socket } from 'node:net'
import { childProcess, net, workerThreads } from '../builtins.js'
import { debuglog } from 'node:util'
import { readStartTime } from '../owner.js'
import { makeKeeperPipe, type KeeperPipe } from './keeper-pipe.js'
import { KEEPER_AWK, KEEPER_SH, KEEPER_WAIT } from './keeper-program.js'
import { ownerTask } from './owner-task.js'
import { writeStderr } from '../internal/stderr.js'
import { sleepSync } from '../internal/sleep-sync.js'

const debug = debuglog('exitguard')

/** How long a write may wait for a keeper that doesn't read before it counts as dead. */
const STALL_MS = 2000
/** Monotonic ms. Not performance.now(): its first call loads perf_hooks, ~3 ms of `exitguard run`'s start. */
const nowMs = () => Number(process.hrtime.bigint()) / 1e6

/**
 * One thread's keeper, seen from the owner: a process started on the first guard that needs
 * it, told each guard's acquisition and early release as one line, and left to release what is
 * still registered once this thread or process has ended (see keeper-program.ts).
 *
 * The only write end of its input lives here (close-on-exec, so no child of ours inherits it),
 * so its EOF is this thread's end: the kernel closes it when the process dies by any means,
 * and Node closes it when a worker thread's event loop is torn down (it is wrapped in a handle).
 */
export class Keeper {
  /** The keeper's PID: a lock record names it (with its start time) as co-holder. */
  readonly pid: number
  /** Its start time as the OS reports it, so a reused PID is not taken for it. */
  readonly startTime: string
  readonly #fd: number
  /** A worker's only: see the constructor. */
  readonly #handle: Socket | null
  #next = 1
  #alive = true
  /** Releases not yet written (see `drop`). */
  #dropped = ''
  #flushSoon: NodeJS.Immediate | null = null

  private constructor(pid: number, startTime: string, fd: number) {
    this.pid = pid
    this.startTime = startTime
    this.#fd = fd
    // Lines are written with writeSync on the descriptor: each is in the kernel before a guard
    // returns, so a SIGKILL right after still finds it. A worker's descriptor must close when
    // its thread ends while the process lives on: a handle does that when the worker's loop is
    // torn down, and is unref'd, so it never keeps the thread alive. The main thread's closes
    // with the process and needs none (node:net would add ~5 ms to `exitguard run`'s start).
    this.#handle = workerThreads().isMainThread ? null : new (net().Socket)({ fd, readable: false, writable: true })
    this.#handle?.on('error', () => {})
    this.#handle?.unref()
    // The exit paths release guards in exitguard's own 'exit' listener, added before this one.
    process.once('exit', () => this.flush())
  }

  /** Starts a keeper for the calling thread, or returns null where none can run. */
  static start(): Keeper | null {
    if (process.platform !== 'linux' && process.platform !== 'darwin') return null
    if (!existsSync('/bin/sh')) return null
    const task = ownerTask()
    if (!task) {
      debug('keeper: none, as this thread has no identity in /proc (not mounted, or the /proc of another PID namespace)')
      return null
    }
    const started = nowMs()
    let pipe: KeeperPipe
    try {
      pipe = makeKeeperPipe()
    } catch (err) {
      debug('keeper: none, as no input pipe only this process can write could be made (%s: %s)', (err as NodeJS.ErrnoException).code, (err as Error).message)
      return null
    }
    let pid = 0
    try {
      const sh = childProcess().spawnSync('/bin/sh', ['-c', KEEPER_SH, 'exitguard-keeper', KEEPER_AWK, task.dir, String(task.pid), task.startTime, process.platform === 'linux' ? '-c' : '-f', KEEPER_WAIT], {
        // A new session: no terminal, no Ctrl-C, none of the owner's process-group signals.
        // (spawnSync honours `detached` as spawn does; @types/node leaves it out.)
        detached: true,
        // Never the owner's stdout/stderr: `out=$(node app.js)` must return when the owner ends.
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
    debug('keeper PID %d started for %s in %s ms', pid, task.dir || `PID ${task.pid}`, (nowMs() - started).toFixed(2))
    return new Keeper(pid, startTime, pipe.write)
  }

  /** What it watches, for messages: this process (main thread) or this thread (a worker). */
  get scope(): string {
    return workerThreads().isMainThread ? 'process' : 'thread'
  }

  /** False once the keeper is known to have died: guards then rely on in-process release alone. */
  get alive(): boolean {
    return this.#alive
  }

  /** Registers one entry (a line without its id); returns its id, or null if the keeper is gone. */
  hold(fields: string): number | null {
    if (!this.#alive) return null
    const id = this.#next++
    debug('keeper %d: +%d %s', this.pid, id, fields)
    // Pending releases go in the same write: one syscall (and one wake-up of the keeper) per guard.
    const line = `${this.#dropped}+${id} ${fields}\n`
    this.#dropped = ''
    return this.#write(line) ? id : null
  }

  /**
   * Forgets entry `id`: the owner has released it. Told lazily (with the next registration, on
   * the next loop turn, or at exit): a release the keeper hasn't heard of is harmless, since it
   * only ever acts on what still matches (dev, ino and birth time; a lock's token; a command's
   * start time), and what the owner released no longer does.
   */
  drop(id: number): void {
    if (!this.#alive) return
    debug('keeper %d: -%d', this.pid, id)
    this.#dropped += `-${id}\n`
    if (this.#dropped.length > 4096) this.flush()
    else this.#flushSoon ??= setImmediate(() => this.flush()).unref()
  }

  /** Writes the pending releases now. */
  flush(): void {
    if (this.#flushSoon) clearImmediate(this.#flushSoon)
    this.#flushSoon = null
    if (!this.#alive || this.#dropped === '') return
    const lines = this.#dropped
    this.#dropped = ''
    this.#write(lines)
  }

  #write(line: string): boolean {
    const bytes = Buffer.from(line)
    let stalled = 0
    for (let offset = 0; offset < bytes.length; ) {
      try {
        offset += writeSync(this.#fd, bytes, offset)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        // Non-blocking: a full pipe means the keeper is behind. It drains in µs.
        if (code === 'EAGAIN' && (stalled ||= nowMs()) > nowMs() - STALL_MS) {
          sleepSync(0.1)
          continue
        }
        this.#died(code === 'EAGAIN' ? `it read nothing for ${STALL_MS} ms` : `writing to it failed (${code})`)
        return false
      }
    }
    return true
  }

  #died(why: string): void {
    if (!this.#alive) return
    this.#alive = false
    // Close the descriptor: nothing more to tell it.
    if (this.#handle) this.#handle.destroy()
    else closeSync(this.#fd)
    writeStderr(`exitguard: the keeper process (PID ${this.pid}) is gone (${why}); from now on this ${this.scope} releases its guards in-process only, so a SIGKILL would leave them to the next run and reapOrphans.`)
  }
}
