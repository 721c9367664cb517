import { constants as osConstants } from 'node:os'

/**
 * Signals whose default action does not end the process (ignore, stop, continue), and
 * SIGKILL/SIGSTOP, which no one can catch. SIGINFO and SIGEMT exist on macOS only.
 */
const NOT_ENDING = new Set(['SIGKILL', 'SIGSTOP', 'SIGCHLD', 'SIGCLD', 'SIGCONT', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGWINCH', 'SIGINFO'])

/**
 * Left to their default action although they would end the wrapper:
 * - SIGUSR1 starts Node's inspector instead of ending the process; SIGPIPE is ignored by Node.
 * - SIGSEGV, SIGBUS, SIGFPE, SIGILL: a listener returns to the faulting instruction, so a real
 *   fault of the wrapper would loop for ever instead of ending it (Node's docs on signal events).
 *   Sent with kill(1), they end the wrapper as SIGKILL does: see docs/cli.md.
 */
const LEFT_ALONE = new Set(['SIGUSR1', 'SIGPIPE', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL'])

/**
 * The signals `exitguard run` forwards to its command: every signal that would end the wrapper
 * and that Node can catch. The wrapper then waits for the command and ends as it ended, so the
 * lock is never released while the command still runs (a signal left to the exit hooks would
 * release it and end the wrapper, and a second run would start beside the command).
 *
 * One name per number (SIGIOT is SIGABRT, SIGPOLL is SIGIO), or the command would get it twice.
 * SIGPROF is left out when this process is profiled (`--cpu-prof`, `--prof`): V8's sampler
 * sends it many times a second, and each would be forwarded.
 */
export function forwardedSignals(
  signals: Readonly<Record<string, number>> = osConstants.signals,
  nodeOptions: readonly string[] = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)],
): NodeJS.Signals[] {
  const profiled = nodeOptions.some((o) => /^--(cpu-)?prof(=|$)/.test(o))
  const seen = new Set<number>()
  const forwarded: NodeJS.Signals[] = []
  for (const [name, number] of Object.entries(signals)) {
    if (NOT_ENDING.has(name) || LEFT_ALONE.has(name) || seen.has(number)) continue
    if (name === 'SIGPROF' && profiled) continue
    seen.add(number)
    forwarded.push(name as NodeJS.Signals)
  }
  return forwarded
}
