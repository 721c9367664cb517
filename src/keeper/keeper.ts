import { closeSync, existsSync, writeSync } from 'node:fs'
import type { Socket } from 'node:net'
import { net, workerThreads } from '../builtins.js'
import { debuglog } from 'node:util'
import { startChildKeeper, startOrphanKeeper } from './keeper-start.js'
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
 * How the keeper process is started, a main thread's and a worker's: keeper-start.ts.
 */
export class Keeper {
  /** The keeper's PID: a lock record names it (with its start time) as co-holder. */
  readonly pid: number
  /** Its start time as the OS reports it, so a reused PID is not taken for it. */
  readonly startTime: string
  readonly #fd: number
  /** What holds the descriptor open where a handle does: a worker's (see start), a child keeper's input. */
  readonly #handle: Socket | null
  #next = 1
  #alive = true
  /** Releases not yet written (see `drop`). */
  #dropped = ''
  #flushSoon: NodeJS.Immediate | null = null

  private constructor(pid: number, startTime: string, fd: number, handle: Socket | null) {
    this.pid = pid
    this.startTime = startTime
    this.#fd = fd
    // Lines are written with writeSync on the descriptor: each is in the kernel before a guard
    // returns, so a SIGKILL right after still finds it.
    this.#handle = handle
    // What is still pending at exit. A release after this listener (signal-exit runs exitguard's
    // handlers after every 'exit' listener) or on a signal's re-raise is never written: harmless
    // for an entry that no longer matches, and one that still does is written at once (`drop`).
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
    const main = workerThreads().isMainThread
    // Bun: a child keeper released nothing after its owner's SIGKILL (test:runtimes; why is not
    // known yet), so there it is the orphan on a FIFO that worker threads use, which works.
    const keeper = main && !process.versions.bun ? startChildKeeper(task) : startOrphanKeeper(task)
    if (!keeper) return null
    debug('keeper PID %d started for %s in %s ms', keeper.pid, task.dir || `PID ${task.pid}`, (nowMs() - started).toFixed(2))
    // A worker's descriptor must close when its thread ends while the process lives on: a handle
    // does that when the worker's loop is torn down, and is unref'd, so it never keeps the thread
    // alive. (A main thread's closes with the process; its child keeper's input has one anyway.)
    const handle = keeper.handle ?? (main ? null : new (net().Socket)({ fd: keeper.fd, readable: false, writable: true }))
    handle?.on('error', () => {})
    handle?.unref()
    return new Keeper(keeper.pid, keeper.startTime, keeper.fd, handle)
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
  drop(id: number, now = false): void {
    if (!this.#alive) return
    debug('keeper %d: -%d', this.pid, id)
    this.#dropped += `-${id}\n`
    // `now`: the entry still matches (a kept file, a lock handed over), so lazily is not harmless.
    if (now || this.#dropped.length > 4096) this.flush()
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
        stalled ||= nowMs()
        if (code === 'EAGAIN' && stalled > nowMs() - STALL_MS) {
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
    writeStderr(
      `exitguard: the keeper process (PID ${this.pid}) is gone (${why}); from now on this ${this.scope} releases its guards in-process only, so a SIGKILL would leave them to the next run and reapOrphans.`,
    )
  }
}
