import { constants } from 'node:os'

/**
 * Whether the app listens for `signal` under another of its names: SIGIOT is SIGABRT and SIGPOLL
 * is SIGIO on Linux. Node emits the signal once under each name that has listeners, and
 * signal-exit counts listeners name by name, so an app that handles SIGABRT does not make
 * signal-exit's SIGIOT listener stand aside: the exit handlers would run (a lock released while
 * the app, or the command `exitguard run` forwarded the signal to, still works) and the process
 * would be killed. Called from signal-exit's callback, after it has taken its own listeners off;
 * the listeners it still counts are those of other loaded copies of it (v4's shared emitter) and
 * of signal-exit v3 (proper-lockfile's), one per name each, as its own check counts them.
 */
export function appListensUnderAnotherName(signal: string, names: readonly string[]): boolean {
  const v4 = (globalThis as { [key: symbol]: { count?: unknown } | undefined })[Symbol.for('signal-exit emitter')]?.count
  const v3 = (process as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__?.count
  const theirs = (typeof v4 === 'number' ? v4 : 0) + (typeof v3 === 'number' ? v3 : 0)
  return names.some((name) => name !== signal && sameSignal(name, signal) && process.listenerCount(name) > theirs)
}

/** Whether two names are one signal (SIGIOT and SIGABRT on Linux); false for a name this OS lacks. */
export function sameSignal(a: string, b: string): boolean {
  const number = (name: string) => (constants.signals as Record<string, number | undefined>)[name]
  return number(a) !== undefined && number(a) === number(b)
}
