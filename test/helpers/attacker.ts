import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { chmodSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { NOBODY } from './as-nobody.js'
import { fixtures, makeTempDir, startCommand, type RunningChild } from './child.js'

/** util-linux setpriv, to run a child as another user; undefined where there is none. */
export const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p))
const cc = ['/usr/bin/cc', '/usr/bin/gcc', '/usr/bin/clang'].find((p) => existsSync(p))

/** Why the second-user tests can't run here, or null if they can. */
export function secondUserSkipReason(): string | null {
  if (process.platform !== 'linux') return `needs Linux (renameat2, setpriv); this is ${process.platform}`
  if (process.getuid?.() !== 0) return 'needs root, to run the attacker as uid 65534 and hand it a temp dir'
  if (!setpriv) return 'no setpriv (util-linux) in /usr/bin or /bin'
  if (!cc) return 'no C compiler (cc, gcc or clang) to build the attacker'
  return null
}

/**
 * Compiles test/fixtures/<name>.c (default: swap-race.c) into a fresh directory that uid 65534
 * can read and run (the clone itself may sit in a 0700 directory). Returns the binary and a cleanup.
 */
export function buildAttacker(name = 'swap-race'): { bin: string; cleanup(): void } {
  const out = makeTempDir('exitguard-attacker-')
  chmodSync(out.dir, 0o755)
  const bin = join(out.dir, name)
  const r = spawnSync(cc!, ['-O2', '-o', bin, join(fixtures, `${name}.c`)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`could not build the attacker with ${cc}: ${r.stderr || r.error?.message}`)
  return { bin, cleanup: out.cleanup }
}

/** Runs `command args…` as uid/gid 65534 with no supplementary groups (SIGKILLed after `timeout` ms, default 30 s). */
export function startAsNobody(command: string, args: string[] = [], timeout?: number): RunningChild {
  return startCommand(setpriv!, [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', command, ...args], { cwd: '/', timeout })
}

/** The racing attacker (test/fixtures/swap-race.c), one process for many rounds. */
export interface Attacker {
  /** Starts swapping `a` and `b` (after putting `fillers` files next to `a`, and filling `busy`); resolves once the first swap is done. */
  go(a: string, b: string, fillers: number, busy?: string): Promise<void>
  /** Stops swapping; resolves once it has. */
  stop(): Promise<void>
  /** Ends the process. */
  end(): Promise<void>
}

/** Starts the attacker `bin` as uid 65534, bounded by `timeout` ms (then SIGKILLed). */
export function startAttacker(bin: string, timeout = 600_000): Attacker {
  const child = spawn(setpriv!, [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', bin], { cwd: '/', stdio: ['pipe', 'pipe', 'inherit'], signal: AbortSignal.timeout(timeout) })
  child.on('error', () => {}) // the abort on timeout; a hung test then fails on its own timeout
  const lines: string[] = []
  const waiters: ((line: string | null) => void)[] = []
  const rl = createInterface({ input: child.stdout! })
  rl.on('line', (line) => (waiters.length ? waiters.shift()!(line) : lines.push(line)))
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()))
  void closed.then(() => {
    for (const w of waiters.splice(0)) w(null)
  })
  const next = () => (lines.length ? Promise.resolve(lines.shift()!) : new Promise<string | null>((resolve) => waiters.push(resolve)))
  const expectLine = async (want: string) => {
    const line = await next()
    if (line !== want) throw new Error(`the attacker said ${JSON.stringify(line)} instead of ${JSON.stringify(want)}`)
  }
  return {
    go(a, b, fillers, busy) {
      child.stdin!.write(`go ${a} ${b} ${fillers}${busy ? ` ${busy}` : ''}\n`)
      return expectLine('ready')
    },
    stop() {
      child.stdin!.write('stop\n')
      return expectLine('stopped')
    },
    async end() {
      child.stdin!.end()
      await closed
    },
  }
}
