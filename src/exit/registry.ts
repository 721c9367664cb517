import { workerThreads } from '../builtins.js'
import { invalidArgType, invalidArgValue } from '../errors.js'
import { installExitPaths, type ExitRunner } from './exit-paths.js'

/** A function run at exit. It may return a promise; see the README for where it can be awaited. */
export type ExitHandler<A extends unknown[] = unknown[]> = (...args: A) => unknown

/** What `onExit` returns: the handle of one registration. */
export interface Registration {
  /** Shown by `registered()` and in error reports; defaults to the function's name. */
  label: string
  /** True until the handler has run or been unregistered. */
  readonly active: boolean
  /** Removes this registration. Returns true if it was still registered (it had not run yet). */
  unregister(): boolean
}

/** One row of `registered()`. */
export interface RegisteredHandler {
  readonly label: string
  readonly fn: ExitHandler
  readonly args: readonly unknown[]
}

/** Options of the process-wide registry, set with `configure()`. */
export interface ExitOptions {
  /** Milliseconds that async handlers get, in all, on the paths that can wait. Default 5000. */
  asyncTimeout: number
  /**
   * Give this thread's guards to a keeper process too, so they are released even after
   * SIGKILL, the OOM killer or `worker.terminate()` (see docs/keeper.md). Default: true in
   * worker threads, false in the main thread; `EXITGUARD_KEEPER=1` or `=0` sets the default.
   */
  keeper: boolean
}

/** The keeper default: on in worker threads, whose end nothing else can see; EXITGUARD_KEEPER overrides. */
function keeperDefault(): boolean {
  const env = process.env.EXITGUARD_KEEPER
  return env === '1' || env === 'true' ? true : env === '0' || env === 'false' ? false : !workerThreads().isMainThread
}

/** The options with `keeper` worked out on first read: loading node:worker_threads at import costs ms. */
function lazyKeeperDefault(options: Omit<ExitOptions, 'keeper'>): ExitOptions {
  let keeper: boolean | undefined
  return Object.defineProperty(options, 'keeper', {
    enumerable: true,
    get: () => (keeper ??= keeperDefault()),
    set: (value: boolean) => {
      keeper = value
    },
  }) as ExitOptions
}

/** One registration: a node of a doubly linked list, so removal is O(1). */
class Entry implements Registration {
  prev: Entry | null = null
  next: Entry | null = null
  active = true
  label: string
  readonly pid = process.pid

  constructor(
    readonly list: ExitRegistry,
    readonly fn: ExitHandler,
    readonly args: unknown[],
  ) {
    this.label = fn.name || 'anonymous function'
  }

  unregister(): boolean {
    return this.list.remove(this)
  }
}

/**
 * The process-wide list of exit handlers. Newest at the tail; handlers run
 * tail first (LIFO), each at most once, because running one takes it off the list.
 */
export class ExitRegistry {
  private head: Entry | null = null
  private tail: Entry | null = null
  private count = 0
  private hooked = false
  readonly options: ExitOptions = lazyKeeperDefault({ asyncTimeout: 5000 })
  runner: ExitRunner | null = null

  /** Installs the exit hooks now (they go in on the first registration, never at import). */
  hook(): void {
    if (this.hooked) return
    this.hooked = true
    this.runner = installExitPaths(this)
  }

  add(fn: ExitHandler, args: unknown[]): Entry {
    this.hook()
    const entry = new Entry(this, fn, args)
    entry.prev = this.tail
    if (this.tail) this.tail.next = entry
    else this.head = entry
    this.tail = entry
    this.count++
    return entry
  }

  remove(entry: Entry): boolean {
    if (!entry.active || entry.list !== this) return false
    entry.active = false
    if (entry.prev) entry.prev.next = entry.next
    else this.head = entry.next
    if (entry.next) entry.next.prev = entry.prev
    else this.tail = entry.prev
    entry.prev = entry.next = null
    this.count--
    return true
  }

  /** Takes the newest handler off the list, to run it. Handlers of another process are dropped. */
  takeNewest(): Entry | null {
    for (let entry = this.tail; entry; entry = this.tail) {
      this.remove(entry)
      if (entry.pid === process.pid) return entry
    }
    return null
  }

  removeFunction(fn: ExitHandler): number {
    let removed = 0
    for (let entry = this.head; entry; ) {
      const next = entry.next
      if (entry.fn === fn && this.remove(entry)) removed++
      entry = next
    }
    return removed
  }

  get size(): number {
    return this.count
  }

  /** In the order they will run: newest first. */
  list(): RegisteredHandler[] {
    const rows: RegisteredHandler[] = []
    for (let entry = this.tail; entry; entry = entry.prev) {
      rows.push({ label: entry.label, fn: entry.fn, args: entry.args })
    }
    return rows
  }
}

// One registry per process, shared by every copy of exitguard that is loaded
// (two versions in node_modules must not run a handler twice or out of order).
const kRegistry = Symbol.for('exitguard.exit-registry.v1')
const globalSlot = globalThis as typeof globalThis & { [kRegistry]?: ExitRegistry }
globalSlot[kRegistry] ??= new ExitRegistry()
const registry: ExitRegistry = globalSlot[kRegistry]

/** @internal The shared registry, for the guards. */
export function exitRegistry(): ExitRegistry {
  return registry
}

/**
 * Registers `fn` to run when the process exits, called with `args` (captured now).
 * Handlers run last-registered-first, each at most once; one that throws is
 * reported on stderr and the others still run. See the README for which exit
 * paths can await a returned promise.
 *
 * @example
 * const reg = onExit(fs.rmSync, '/tmp/work', { recursive: true, force: true })
 * reg.label = 'remove work dir'
 * // ... cleaned up early? then:
 * reg.unregister()
 */
export function onExit<A extends unknown[]>(fn: ExitHandler<A>, ...args: A): Registration {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'a function', fn)
  return registry.add(fn as ExitHandler, args)
}

/**
 * Removes every registration of `fn` and returns how many there were
 * (0 for a function that was never registered, as Python's `atexit.unregister`).
 *
 * @example
 * onExit(flush); onExit(flush)
 * unregister(flush) // 2
 */
export function unregister(fn: ExitHandler<never[]>): number {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'a function', fn)
  return registry.removeFunction(fn as ExitHandler)
}

/**
 * Lists the handlers that will run at exit, in the order they will run.
 *
 * @example
 * for (const h of registered()) console.error(h.label)
 */
export function registered(): RegisteredHandler[] {
  return registry.list()
}

/**
 * Sets options of the process-wide registry and returns the options now in force.
 *
 * @example
 * configure({ asyncTimeout: 10_000 }) // give async cleanup 10 s on Ctrl-C
 * configure({ keeper: true }) // guards made from now on survive a SIGKILL of this process
 */
export function configure(options: { asyncTimeout?: number | undefined; keeper?: boolean | undefined } = {}): ExitOptions {
  const { asyncTimeout } = options
  if (asyncTimeout !== undefined) {
    if (typeof asyncTimeout !== 'number' || !(asyncTimeout >= 0) || asyncTimeout > 2 ** 31 - 1) {
      throw invalidArgValue('asyncTimeout', asyncTimeout, 'must be a number of milliseconds from 0 to 2147483647')
    }
    registry.options.asyncTimeout = asyncTimeout
  }
  if (options.keeper !== undefined) {
    if (typeof options.keeper !== 'boolean') throw invalidArgType('keeper', 'a boolean', options.keeper)
    registry.options.keeper = options.keeper
  }
  return { ...registry.options }
}

/**
 * Runs every handler, awaiting async ones (bounded by `asyncTimeout`), then
 * calls `process.exit(code)`. Use it where you would call `process.exit` but
 * want async cleanup, e.g. in your own signal listener. Called from an exit
 * handler, it only sets the exit code and returns: the run under way ends the process.
 *
 * @example
 * process.on('SIGTERM', () => void gracefulExit(0))
 */
export async function gracefulExit(code?: number): Promise<void> {
  if (code !== undefined && !Number.isInteger(code)) throw invalidArgValue('code', code, 'must be an integer')
  if (registry.runner?.running) {
    // Called from a handler: the run under way ends the process; waiting for it here would
    // make that handler wait for itself until asyncTimeout. Leave the code, return at once.
    if (code !== undefined) process.exitCode = code
    return
  }
  if (registry.runner) await registry.runner.runGraceful('gracefulExit()')
  process.exit(code)
}
