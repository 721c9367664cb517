import { constants as osConstants } from 'node:os'
import { debuglog } from 'node:util'
import type { onExit as OnSignalExit } from 'signal-exit'
import { signals } from 'signal-exit/signals'
import type { ExitRegistry } from './registry.js'
import { ExitRunner } from './exit-runner.js'
import { requireLazily } from '../require-lazily.cjs'
import { appListensUnderAnotherName, sameSignal } from './signal-names.js'

export { ExitRunner }

const debug = debuglog('exitguard')

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
  const runner = new ExitRunner(registry)
  // Loaded here, at the first registration, not at import: signal-exit captures process.emit
  // when it loads, and must see any patch made before (signal-exit v3, loaded by proper-lockfile).
  const onSignalExit = requireLazily<{ onExit: typeof OnSignalExit }>('signal-exit').onExit
  const onExitCode = (code: number | null | undefined) => {
    debug('exit with code %s, %d handlers', code, registry.size)
    runner.runSync(process.exitCode === undefined || process.exitCode === 0 ? 'process exit' : `exit with code ${String(code)}`)
  }
  onSignalExit((code, signal) => {
    if (signal) return onSignal(runner, registry, signal as NodeJS.Signals, onExitCode) || undefined
    onExitCode(code)
    return undefined
  })
  // Bun calls `exit` listeners without process.emit, where signal-exit looks, so signal-exit
  // never sees the exit after an uncaught exception there: listen for it as well (on Node,
  // signal-exit sees every exit, after the app's own `exit` listeners; docs/platforms.md).
  if (process.versions.bun) process.on('exit', onExitCode)
  process.on('beforeExit', () => onBeforeExit(runner, registry))
  return runner
}

/**
 * A fatal signal: run the handlers gracefully, then die by the same signal. Returns true to tell
 * signal-exit not to re-raise it yet (we do, after the async work).
 */
function onSignal(runner: ExitRunner, registry: ExitRegistry, signal: NodeJS.Signals, onExitCode: (code: number | null | undefined) => void): boolean {
  debug('signal %s, %d handlers', signal, registry.size)
  if (runner.started) {
    // A signal during a graceful run that no signal started (natural end, gracefulExit()):
    // skip the async rest, finish synchronously, and let signal-exit re-raise this signal.
    runner.stopGraceful(`a second signal (${signal}) arrived`)
    runner.runSync(`a second signal (${signal})`)
    return false
  }
  if (registry.size === 0) return false
  if (appListensUnderAnotherName(signal, signals)) {
    // The app handles this signal under its other name: stand aside, as signal-exit does for a
    // listener under the same name. signal-exit has unloaded itself and calls no one again, so
    // from here the 'exit' event runs the handlers (process.exit(), a crash; natural end has
    // beforeExit); a later fatal signal the app does not handle runs none (docs/exit-registry.md).
    debug('signal %s: the app listens for it under another name; standing aside', signal)
    process.once('exit', onExitCode)
    return true
  }
  // Who listens now: signal-exit v4 has unloaded itself, so only signal-exit v3's listeners
  // (proper-lockfile) are left; they must see the re-raise to run their own cleanup.
  const before = new Set(process.listeners(signal))
  const unhook = hookDuringCleanup(runner, signal)
  void runner.runGraceful(`signal ${signal}`).then(() => {
    unhook()
    reRaise(signal, before)
  })
  return true
}

/**
 * Our own listeners while a signal's cleanup runs: they catch a second signal (it skips the
 * async rest; the process still dies by the first one), and they make signal-exit v3 (loaded by
 * proper-lockfile) stand aside instead of killing us now. signal-exit has unloaded itself, so a
 * handler's process.exit() is seen here too: the rest then runs synchronously. Returns the undo.
 */
function hookDuringCleanup(runner: ExitRunner, signal: NodeJS.Signals): () => void {
  // This very signal, emitted again under its other name (SIGIOT for SIGABRT) where a listener
  // keeps that name's watcher (signal-exit v3), comes in this turn of the loop: it is no second one.
  let sameDelivery = true
  setImmediate(() => {
    sameDelivery = false
  })
  const again = (sig: NodeJS.Signals) => {
    if (sameDelivery && sameSignal(sig, signal)) return
    runner.stopGraceful(`a second signal (${sig}) arrived`)
  }
  const onExitEvent = () => runner.runSync('process.exit() during cleanup')
  for (const sig of signals) process.on(sig, again)
  process.once('exit', onExitEvent)
  return () => {
    for (const sig of signals) process.removeListener(sig, again)
    process.removeListener('exit', onExitEvent)
  }
}

/** Dies by `signal` once the handlers ran, so the parent sees the same death. */
function reRaise(signal: NodeJS.Signals, before: Set<unknown>): void {
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
}

/**
 * The event loop drained: the one natural-end moment where promises can still settle.
 * Another beforeExit listener may schedule more work (Node documents that pattern): look
 * once all listeners have run, and if there is new work, wait for the next beforeExit.
 */
function onBeforeExit(runner: ExitRunner, registry: ExitRegistry): void {
  const before = process.getActiveResourcesInfo().length
  process.nextTick(() => {
    if (registry.size === 0 || runner.started || process.getActiveResourcesInfo().length > before) return
    void runner.runGraceful('natural end').then((finished) => {
      // Cut short by asyncTimeout: the hung handler may hold the loop open for ever. End now.
      if (!finished) process.exit()
    })
  })
}
