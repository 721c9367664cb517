import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, realpathSync } from 'node:fs'
import { constants as osConstants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url))
export const root = fileURLToPath(new URL('../../', import.meta.url))

/** SIGABRT and SIGIO where this OS gives each a second name (SIGIOT, SIGPOLL), each with that name. */
export const SIGNALS_WITH_TWO_NAMES = (['SIGABRT', 'SIGIO'] as const).flatMap((signal) => {
  const other = Object.keys(osConstants.signals).find((name) => name !== signal && osConstants.signals[name as NodeJS.Signals] === osConstants.signals[signal])
  return other ? [{ signal, other }] : []
})

/** How a lock holder fixture's `hold` ends, and the exit code each gives. */
export const HOLDER_EXITS = [
  ['natural', 0],
  ['exit0', 0],
  ['exit3', 3],
  ['uncaught', 1],
  ['rejection', 1],
] as const

export interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunningChild {
  child: ChildProcess
  pid: number
  /** Resolves when stdout has printed a line equal to `line` (default "ready"). */
  waitFor(line?: string): Promise<void>
  /** Resolves when the child has ended, with how it ended and what it printed. */
  done: Promise<ChildResult>
  stdout(): string
  stderr(): string
}

/**
 * Starts `node <script> ...args` and collects its output. Every child is bounded:
 * after `timeout` ms it is SIGKILLed, so a hung fixture fails the test instead of hanging it.
 */
export function startNode(script: string, args: string[] = [], options: { timeout?: number; env?: NodeJS.ProcessEnv; cwd?: string; execArgv?: string[] } = {}): RunningChild {
  const child = spawn(process.execPath, [...(options.execArgv ?? []), script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? root,
  })
  return watch(child, options.timeout)
}

/** Same as startNode for any command. */
export function startCommand(command: string, args: string[] = [], options: { timeout?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): RunningChild {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? root,
  })
  return watch(child, options.timeout)
}

function watch(child: ChildProcess, timeout = 30_000): RunningChild {
  let out = ''
  let err = ''
  const waiters: { line: string; resolve: () => void }[] = []
  const lines = () => out.split('\n')
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    for (const w of [...waiters]) {
      if (lines().includes(w.line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
  const done = new Promise<ChildResult>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout: out, stderr: err })
    })
  })
  return {
    child,
    pid: child.pid!,
    done,
    stdout: () => out,
    stderr: () => err,
    waitFor(line = 'ready') {
      if (lines().includes(line)) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        waiters.push({ line, resolve })
        done.then((r) => reject(new Error(`child ended (code ${r.code}, signal ${r.signal}) before printing "${line}"\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)), reject)
      })
    },
  }
}

/** Runs a node script to its end. */
export function runNode(script: string, args: string[] = [], options: { timeout?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ChildResult> {
  return startNode(script, args, options).done
}

/** A fresh directory under the OS temp dir; remove it with `cleanup()`. */
export function makeTempDir(prefix = 'exitguard-test-'): { dir: string; cleanup(): void } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A PID that surely belongs to no process: one of a child that has exited. */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((resolve) => child.on('exit', resolve))
  return child.pid!
}
