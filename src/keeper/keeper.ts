import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeSync } from 'node:fs'
import type { Socket } from 'node:net'
import { debuglog } from 'node:util'
import { isMainThread } from 'node:worker_threads'
import { KEEPER_AWK, KEEPER_SH } from './keeper-program.js'
import { ownerTask } from './owner-task.js'

const debug = debuglog('exitguard')

/** How long a write may wait for a keeper that doesn't read before it counts as dead. */
const STALL_MS = 2000
const sleeper = new Int32Array(new SharedArrayBuffer(4))

/**
 * One thread's keeper, seen from the owner: a process started on the first guard that needs
 * it, told each guard's acquisition and early release as one line, and left to release what is
 * still registered once this thread or process has ended (see keeper-program.ts).
 *
 * The only write end of its stdin lives here (Node's descriptors are close-on-exec), so its
 * EOF is this thread's end: the kernel closes it when the process dies by any means, and Node
 * closes it when a worker thread's event loop is torn down.
 */
export class Keeper {
  /** The keeper's process group (= session) id: what a lock record names as its co-holder. */
  readonly pgid: number
  readonly #socket: Socket
  readonly #fd: number | null
  #next = 1
  #alive = true

  private constructor(child: ChildProcess) {
    this.pgid = child.pid!
    this.#socket = child.stdin as Socket
    // Node destroys `child.stdin` when the child exits, and sh exits at once (awk, which
    // inherited the socket, runs on): take the socket off the ChildProcess to keep it open.
    child.stdin = null
    // Never keep this thread alive for the keeper's sake.
    this.#socket.unref()
    this.#socket.on('error', () => this.#died('its input pipe failed'))
    // Written with writeSync on the descriptor: a line is in the kernel before a guard returns,
    // so a SIGKILL right after still finds it. The stream's own write could queue it in memory.
    const fd = (this.#socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd
    this.#fd = typeof fd === 'number' && fd >= 0 ? fd : null
  }

  /** Starts a keeper for the calling thread, or returns null where none can run. */
  static start(): Keeper | null {
    if (process.platform !== 'linux' && process.platform !== 'darwin') return null
    if (!existsSync('/bin/sh')) return null
    const task = ownerTask()
    if (!task) return null
    const started = performance.now()
    let child: ChildProcess
    try {
      child = spawn('/bin/sh', ['-c', KEEPER_SH, 'exitguard-keeper', KEEPER_AWK, task.dir, String(task.pid), task.startTime, process.platform === 'linux' ? '-c' : '-f'], {
        // A new session: no terminal, no Ctrl-C, none of the owner's process-group signals.
        detached: true,
        // Never the owner's stdout/stderr: `out=$(node app.js)` must return when the owner ends.
        stdio: ['pipe', 'ignore', 'ignore'],
      })
    } catch (err) {
      debug('keeper could not start: %s', (err as Error).message)
      return null
    }
    if (child.pid === undefined) {
      child.on('error', () => {})
      return null
    }
    const keeper = new Keeper(child)
    child.on('error', (err) => keeper.#died(err.message))
    child.on('exit', (code) => {
      // sh exits as soon as awk runs in the background; anything else means no keeper.
      if (code !== 0) keeper.#died(code === 127 ? 'awk was not found' : `its shell exited with ${code}`)
    })
    // The main thread ends with the process, and init reaps sh then. A worker's loop may end
    // first: stay referenced until sh has been reaped (a few ms), or it stays a zombie.
    if (isMainThread) child.unref()
    debug('keeper PID %d started for %s in %s ms', keeper.pgid, task.dir || `PID ${task.pid}`, (performance.now() - started).toFixed(2))
    return keeper
  }

  /** What it watches, for messages: this process (main thread) or this thread (a worker). */
  get scope(): string {
    return isMainThread ? 'process' : 'thread'
  }

  /** False once the keeper is known to have died: guards then rely on in-process release alone. */
  get alive(): boolean {
    return this.#alive
  }

  /** Registers one entry (a line without its id); returns its id, or null if the keeper is gone. */
  hold(fields: string): number | null {
    if (!this.#alive) return null
    const id = this.#next++
    return this.#write(`+${id} ${fields}\n`) ? id : null
  }

  /** Forgets entry `id`: the owner has released it. */
  drop(id: number): void {
    if (this.#alive) this.#write(`-${id}\n`)
  }

  #write(line: string): boolean {
    debug('keeper %d: %s', this.pgid, line.trimEnd())
    if (this.#fd === null) {
      this.#socket.write(line)
      return this.#alive
    }
    const bytes = Buffer.from(line)
    let stalled = 0
    for (let offset = 0; offset < bytes.length; ) {
      try {
        offset += writeSync(this.#fd, bytes, offset)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        // The socket is non-blocking: a full buffer means the keeper is behind. It drains in µs.
        if (code === 'EAGAIN' && (stalled ||= performance.now()) > performance.now() - STALL_MS) {
          Atomics.wait(sleeper, 0, 0, 0.1)
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
    try {
      writeSync(2, `exitguard: the keeper process (PID ${this.pgid}) is gone (${why}); from now on this ${this.scope} releases its guards in-process only, so a SIGKILL would leave them to the next run and reapOrphans.\n`)
    } catch {
      // no stderr
    }
  }
}
