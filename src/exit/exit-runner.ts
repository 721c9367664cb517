import { debuglog, format } from 'node:util'
import type { ExitRegistry } from './registry.js'
import { writeStderr } from '../internal/stderr.js'

const debug = debuglog('exitguard')

/**
 * Runs the registry's handlers, newest first, each once: synchronously where nothing can be
 * awaited (process.exit(), a crash), or gracefully, awaiting promises within `asyncTimeout`.
 */
export class ExitRunner {
  #graceful: Promise<boolean> | null = null
  #running = false
  #synchronous = false
  #stop: ((why: string) => void) | null = null

  constructor(private readonly registry: ExitRegistry) {}

  /** True once a graceful run has started (it runs once per process). */
  get started(): boolean {
    return this.#graceful !== null
  }

  /** True while a graceful run is under way. */
  get running(): boolean {
    return this.#running
  }

  /** True while handlers run on a path where nothing can be awaited (process.exit(), a crash). */
  get synchronous(): boolean {
    return this.#synchronous
  }

  /** Cuts a graceful run short (`why` is reported for the handler it was waiting on). */
  stopGraceful(why: string): void {
    this.#stop?.(why)
  }

  /** Runs every handler now; an async one is skipped, a returned promise can't be awaited. */
  runSync(reason: string): void {
    this.#synchronous = true
    for (let entry = this.registry.takeNewest(); entry; entry = this.registry.takeNewest()) {
      if (isAsyncFunction(entry.fn)) {
        writeStderr(`exitguard: async exit handler "${entry.label}" skipped: on ${reason} only synchronous work can run`)
        continue
      }
      const result = call(entry.label, entry.fn, entry.args, reason)
      if (isThenable(result)) {
        result.then(undefined, () => {})
        writeStderr(`exitguard: exit handler "${entry.label}" returned a promise on ${reason}; it could not be awaited`)
      }
    }
    this.#synchronous = false
  }

  /** Runs every handler, awaiting promises within `asyncTimeout`; true if none was cut short. Once per process. */
  runGraceful(reason: string): Promise<boolean> {
    this.#graceful ??= this.#runGraceful(reason)
    return this.#graceful
  }

  async #runGraceful(reason: string): Promise<boolean> {
    this.#running = true
    debug('graceful exit: %s, %d handlers', reason, this.registry.size)
    const { stopped, stop } = this.#deadline()
    while (!stopped.why) {
      const entry = this.registry.takeNewest()
      if (!entry) break
      const result = call(entry.label, entry.fn, entry.args, reason)
      if (!isThenable(result)) continue
      const settled = Promise.resolve(result).then(
        () => true,
        (err: unknown) => {
          reportError(entry.label, reason, err)
          return true
        },
      )
      if (!(await Promise.race([settled, stop.then(() => false)]))) {
        writeStderr(`exitguard: exit handler "${entry.label}" did not finish on ${reason}: ${stopped.why}`)
      }
    }
    this.stopGraceful('done')
    const cutShort = stopped.why !== 'done'
    // Whatever is left after a timeout or a second signal: synchronous handlers still run.
    this.runSync(cutShort ? `${reason} after ${stopped.why}` : reason)
    this.#running = false
    return !cutShort
  }

  /** The asyncTimeout timer: `stop` resolves when it runs out or `stopGraceful` is called. */
  #deadline(): { stopped: { why: string | null }; stop: Promise<void> } {
    const stopped: { why: string | null } = { why: null }
    const { asyncTimeout } = this.registry.options
    const stop = new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.stopGraceful(`the ${asyncTimeout} ms asyncTimeout ran out`), asyncTimeout)
      this.#stop = (why) => {
        stopped.why ??= why
        clearTimeout(timer)
        resolve()
      }
    })
    return { stopped, stop }
  }
}

function call(label: string, fn: (...args: unknown[]) => unknown, args: unknown[], reason: string): unknown {
  try {
    return fn(...args)
  } catch (err) {
    reportError(label, reason, err)
    return undefined
  }
}

function reportError(label: string, reason: string, err: unknown): void {
  writeStderr(`exitguard: exit handler "${label}" failed on ${reason} (the other handlers still run):\n${format(err)}`)
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

function isAsyncFunction(fn: unknown): boolean {
  return (fn as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === 'AsyncFunction'
}
