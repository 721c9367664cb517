import { constants as osConstants } from 'node:os'
import { debuglog, format } from 'node:util'
import type { onExit as OnSignalExit } from 'signal-exit'
import { signals } from 'signal-exit/signals'
import type { ExitRegistry } from './registry.js'
import { requireLazily } from '../require-lazily.cjs'
import { writeStderr } from '../internal/stderr.js'
import { appListensUnderAnotherName } from './signal-names.js'

const debug = debuglog('exitguard')

/** What the hooks expose to `gracefulExit()`. */
export interface ExitRunner {
  /** Runs every handler, awaiting promises within `asyncTimeout`; true if none was cut short. */
  runGraceful(reason: string): Promise<boolean>
  /** True while a graceful run is under way. */
  readonly running: boolean
  /** True while handlers run on a path where nothing can be awaited (process.exit(), a crash). */
  readonly synchronous: boolean
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
  let graceful: Promise<boolean> | null = null
  let running = false
  let synchronous = false
  let stopGraceful: ((why: string) => void) | null = null

  function runSync(reason: string): void {
    synchronous = true
    for (let entry = registry.takeNewest(); entry; entry = registry.takeNewest()) {
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
    synchronous = false
  }

  function runGraceful(reason: string): Promise<boolean> {
    graceful ??= (async () => {
      running = true
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
          writeStderr(`exitguard: exit handler "${entry.label}" did not finish on ${reason}: ${stopped}`)
        }
      }
      stopGraceful?.('done')
      const cutShort = stopped !== 'done'
      // Whatever is left after a timeout or a second signal: synchronous handlers still run.
      runSync(cutShort ? `${reason} after ${stopped}` : reason)
      running = false
      return !cutShort
    })()
    return graceful
  }

  function onSignal(signal: NodeJS.Signals): boolean {
    debug('signal %s, %d handlers', signal, registry.size)
    if (graceful) {
      // A signal during a graceful run that no signal started (natural end, gracefulExit()):
      // skip the async rest, finish synchronously, and let signal-exit re-raise this signal.
      stopGraceful?.(`a second signal (${signal}) arrived`)
      runSync(`a second signal (${signal})`)
      return false
    }
    if (registry.size === 0) return false
    if (appListensUnderAnotherName(signal, signals)) {
      // The app handles this signal under its other name: stand aside, as signal-exit does for a
      // listener under the same name. signal-exit has unloaded itself and calls no one again, so
      // from here the 'exit' event runs the handlers (process.exit(), a crash; natural end has
      // beforeExit below); a later fatal signal the app does not handle runs none (docs/exit-registry.md).
      debug('signal %s: the app listens for it under another name; standing aside', signal)
      process.once('exit', onExitCode)
      return true
    }
    // Our own listeners, added at once: they catch a second signal, and they make
    // signal-exit v3 (loaded by proper-lockfile) stand aside instead of killing us now.
    // A second signal skips the async rest; the process still dies by the first one.
    const again = (sig: NodeJS.Signals) => {
      stopGraceful?.(`a second signal (${sig}) arrived`)
    }
    // Who listens now: signal-exit v4 has unloaded itself, so only signal-exit v3's listeners
    // (proper-lockfile) are left; they must see the re-raise to run their own cleanup.
    const before = new Set(process.listeners(signal))
    for (const sig of signals) process.on(sig, again)
    // signal-exit has unloaded itself: if a handler calls process.exit(), run the rest here.
    const onExitEvent = () => runSync('process.exit() during cleanup')
    process.once('exit', onExitEvent)
    void runGraceful(`signal ${signal}`).then(() => {
      for (const sig of signals) process.removeListener(sig, again)
      process.removeListener('exit', onExitEvent)
      // A listener a handler added during cleanup would catch the re-raise, and the process
      // would live on and exit 0 instead of dying by the signal: take those off first.
      for (const listener of process.listeners(signal)) if (!before.has(listener)) process.removeListener(signal, listener as () => void)
      const code = 128 + (osConstants.signals[signal] ?? 0)
      // PID 1 of a PID namespace (a container run without --init) is immune to its own signals
      // without a handler: the re-raise would be ignored, and the app would run on without the
      // locks its handlers just released. Exit as a shell reports that signal instead.
      if (process.pid === 1) {
        debug('PID 1: exiting with %d for %s', code, signal)
        process.exit(code)
      }
      debug('re-raising %s', signal)
      // A listener left on this signal (signal-exit v3) runs on a later loop turn; keep the loop
      // alive until it has. Should the process still live then, die by the signal regardless.
      setTimeout(() => {
        process.removeAllListeners(signal)
        process.kill(process.pid, signal)
        process.exit(code) // if even that did not end us: the handlers ran, so the process must end
      }, 1000)
      process.kill(process.pid, signal)
    })
    return true // tell signal-exit not to re-raise yet: we do it after the async work
  }

  // Loaded here, at the first registration, not at import: signal-exit captures process.emit
  // when it loads, and must see any patch made before (signal-exit v3, loaded by proper-lockfile).
  const onSignalExit = requireLazily<{ onExit: typeof OnSignalExit }>('signal-exit').onExit
  const onExitCode = (code: number | null | undefined) => {
    debug('exit with code %s, %d handlers', code, registry.size)
    runSync(process.exitCode === undefined || process.exitCode === 0 ? 'process exit' : `exit with code ${String(code)}`)
  }
  onSignalExit((code, signal) => {
    if (signal) return onSignal(signal as NodeJS.Signals) || undefined
    onExitCode(code)
    return undefined
  })
  // Bun calls `exit` listeners without process.emit, where signal-exit looks, so signal-exit
  // never sees the exit after an uncaught exception there: listen for it as well (on Node,
  // signal-exit sees every exit, after the app's own `exit` listeners; docs/platforms.md).
  if (process.versions.bun) process.on('exit', onExitCode)

  process.on('beforeExit', () => {
    // The event loop drained: the one natural-end moment where promises can still settle.
    // Another beforeExit listener may schedule more work (Node documents that pattern): look
    // once all listeners have run, and if there is new work, wait for the next beforeExit.
    const before = process.getActiveResourcesInfo().length
    process.nextTick(() => {
      if (registry.size === 0 || graceful || process.getActiveResourcesInfo().length > before) return
      void runGraceful('natural end').then((finished) => {
        // Cut short by asyncTimeout: the hung handler may hold the loop open for ever. End now.
        if (!finished) process.exit()
      })
    })
  })

  return {
    runGraceful,
    get running() {
      return running
    },
    get synchronous() {
      return synchronous
    },
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
