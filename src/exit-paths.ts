import { writeSync } from 'node:fs'
import { debuglog, format } from 'node:util'
import { onExit as onSignalExit } from 'signal-exit'
import { signals } from 'signal-exit/signals'
import type { ExitRegistry } from './registry.js'

const debug = debuglog('exitguard')

/** What the hooks expose to `gracefulExit()`. */
export interface ExitRunner {
  /** Runs every handler, awaiting promises within the registry's `asyncTimeout`. */
  runGraceful(reason: string): Promise<void>
}

/**
 * Hooks every exit path Node lets us see, once per process:
 * - `process.exit()`, the `exit` event (natural end, uncaught exception,
 *   unhandled rejection): through signal-exit; only synchronous work can run.
 * - natural end: `beforeExit`, where async handlers can still be awaited.
 * - fatal signals: through signal-exit, which stands aside when the app has
 *   its own listener; we await async handlers, then re-raise the signal so the
 *   parent sees the same death (a shell prints 130 for Ctrl-C).
 */
export function installExitPaths(registry: ExitRegistry): ExitRunner {
  let graceful: Promise<void> | null = null
  let stopGraceful: ((why: string) => void) | null = null

  function runSync(reason: string): void {
    for (let entry = registry.takeNewest(); entry; entry = registry.takeNewest()) {
      if (isAsyncFunction(entry.fn)) {
        report(`exitguard: async exit handler "${entry.label}" skipped: on ${reason} only synchronous work can run`)
        continue
      }
      const result = call(entry.label, entry.fn, entry.args, reason)
      if (isThenable(result)) {
        result.then(undefined, () => {})
        report(`exitguard: exit handler "${entry.label}" returned a promise on ${reason}; it could not be awaited`)
      }
    }
  }

  function runGraceful(reason: string): Promise<void> {
    graceful ??= (async () => {
      debug('graceful exit: %s, %d handlers', reason, registry.size)
      let stopped: string | null = null
      const stop = new Promise<void>((resolve) => {
        const timer = setTimeout(() => stopGraceful?.(`the ${registry.options.asyncTimeout} ms asyncTimeout ran out`), registry.options.asyncTimeout)
        stopGraceful = (why) => {
          stopped ??= why
          clearTimeout(timer)
          resolve()
        }
      })
      while (!stopped) {
        const entry = registry.takeNewest()
        if (!entry) break
        const result = call(entry.label, entry.fn, entry.args, reason)
        if (!isThenable(result)) continue
        const settled = Promise.resolve(result).then(
          () => true,
          (err: unknown) => (reportError(entry.label, reason, err), true),
        )
        if (!(await Promise.race([settled, stop.then(() => false)]))) {
          report(`exitguard: exit handler "${entry.label}" did not finish on ${reason}: ${stopped}`)
        }
      }
      stopGraceful?.('done')
      // Whatever is left after a timeout or a second signal: synchronous handlers still run.
      runSync(stopped && stopped !== 'done' ? `${reason} after ${stopped}` : reason)
    })()
    return graceful
  }

  function onSignal(signal: NodeJS.Signals): boolean {
    debug('signal %s, %d handlers', signal, registry.size)
    if (graceful) {
      // A second signal while async cleanup runs: skip it, finish synchronously, die by this signal.
      stopGraceful?.(`a second signal (${signal}) arrived`)
      runSync(`a second signal (${signal})`)
      return false
    }
    if (registry.size === 0) return false
    // Our own listeners, added at once: they catch a second signal, and they make
    // signal-exit v3 (loaded by proper-lockfile) stand aside instead of killing us now.
    const again = (sig: NodeJS.Signals) => {
      stopGraceful?.(`a second signal (${sig}) arrived`)
    }
    for (const sig of signals) process.on(sig, again)
    // signal-exit has unloaded itself: if a handler calls process.exit(), run the rest here.
    const onExitEvent = () => runSync('process.exit() during cleanup')
    process.once('exit', onExitEvent)
    void runGraceful(`signal ${signal}`).then(() => {
      for (const sig of signals) process.removeListener(sig, again)
      process.removeListener('exit', onExitEvent)
      debug('re-raising %s', signal)
      // A listener left on this signal (signal-exit v3, loaded by proper-lockfile) runs on a
      // later loop turn; keep the loop alive until it has, or the process would exit with 0.
      setTimeout(() => {}, 1000)
      process.kill(process.pid, signal)
    })
    return true // tell signal-exit not to re-raise yet: we do it after the async work
  }

  onSignalExit((code, signal) => {
    if (signal) return onSignal(signal as NodeJS.Signals) || undefined
    debug('exit with code %s, %d handlers', code, registry.size)
    runSync(process.exitCode === undefined || process.exitCode === 0 ? 'process exit' : `exit with code ${String(code)}`)
    return undefined
  })

  process.on('beforeExit', () => {
    // The event loop drained: the one natural-end moment where promises can still settle.
    if (registry.size > 0 && !graceful) void runGraceful('natural end')
  })

  return { runGraceful }
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
  report(`exitguard: exit handler "${label}" failed on ${reason} (the other handlers still run):\n${format(err)}`)
}

function report(message: string): void {
  try {
    // Synchronous: at exit there is no later tick to flush a stream.
    writeSync(2, message + '\n')
  } catch {
    // stderr is closed: nothing left to tell.
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

function isAsyncFunction(fn: unknown): boolean {
  return (fn as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === 'AsyncFunction'
}
