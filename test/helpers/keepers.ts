import { readdirSync, readFileSync } from 'node:fs'
import type { RunningChild } from './child.js'

/** Set by the global setup in every test process and inherited by each child and keeper. */
export const RUN_TAG = 'EXITGUARD_TEST_RUN'

/**
 * Keeper processes started under this test run: awk running the keeper program (its first
 * line names it), whose environment holds this run's tag.
 */
export function keeperProcesses(tag = process.env[RUN_TAG]): number[] {
  const found: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, 'latin1').includes('# exitguard-keeper:')) continue
      if (tag && !readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(`${RUN_TAG}=${tag}`)) continue
      found.push(Number(name))
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found
}

/** True while `pid` runs: gone or a zombie (init may reap late in a container) is not running. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))
  } catch {
    return false
  }
}

/**
 * Polls `condition` every 5 ms until it holds or `bound` ms pass; returns whether it held. The
 * bound only caps a failure: on a loaded 2-core machine a keeper's sh, awk, stat and rm can take
 * seconds to get scheduled, so it is generous.
 */
export async function eventually(condition: () => boolean, bound = 60_000): Promise<boolean> {
  const until = Date.now() + bound
  while (!condition()) {
    if (Date.now() > until) return false
    await new Promise((r) => setTimeout(r, 5))
  }
  return true
}

/** A process's start time (/proc/<pid>/stat field 22), or null if it is gone. */
export function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

/** A process to end after a test: its PID with its start time, taken now. */
export interface Started {
  pid: number
  start: string | null
}
export function processStarted(pid: number): Started {
  return { pid, start: startTimeOf(pid) }
}

/** SIGKILLs the process only if it still runs with the same start time: never a reused PID. */
export function killIfStill({ pid, start }: Started): void {
  try {
    if (start !== null && running(pid) && startTimeOf(pid) === start) process.kill(pid, 'SIGKILL')
  } catch {
    // gone meanwhile
  }
}

/**
 * After a test: ends what it started and may have left running. First the processes it started
 * indirectly (keepers, commands, daemons), each only if it is still the same process; then its
 * own children, with `signal`, waiting for each to end (a wrapper's pipes close only once its
 * command has gone). Empties both lists.
 */
export async function endStarted(processes: Started[], children: RunningChild[], signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  for (const p of processes.splice(0)) killIfStill(p)
  for (const c of children.splice(0)) {
    c.child.kill(signal)
    await c.done
  }
}
