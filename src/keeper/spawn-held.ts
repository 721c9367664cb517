import type { ChildProcess } from 'node:child_process'
import { childProcess } from '../builtins.js'
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { holdCommand, threadKeeper, type KeeperHold } from './hold.js'

/**
 * Runs `sh` in front of the command: it waits on fd 3 until the keeper knows the PID, then
 * execs the command in place (same PID, same start time). Without this gate, a SIGKILL of the
 * owner between `spawn` returning and the keeper's line being written (µs, or ms on a loaded
 * machine) would leave a running command the keeper never heard of. If the owner dies before
 * saying go, fd 3 reads EOF and the command never starts.
 */
const GATE = 'IFS= read -r go <&3 || exit 125; exec 3<&-; exec "$@"'

/**
 * Starts `file` with `args`, stdio inherited, registered with this thread's keeper so that the
 * keeper stops it (SIGTERM, SIGKILL after `graceMs`) if this thread dies first. Without a
 * keeper, or for a command that can't be found or run (spawn's own error reports it the same
 * way), it is a plain `spawn`.
 */
export function spawnHeld(file: string, args: string[], env: NodeJS.ProcessEnv, graceMs: number): { child: ChildProcess; held: KeeperHold | null } {
  if (!threadKeeper() || !runnable(file, env.PATH)) return { child: childProcess().spawn(file, args, { stdio: 'inherit', env }), held: null }
  const child = childProcess().spawn('/bin/sh', ['-c', GATE, 'sh', file, ...args], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], env })
  const held = child.pid === undefined ? null : holdCommand(child.pid, graceMs)
  const gate = child.stdio[3] as NodeJS.WritableStream | null
  gate?.on('error', () => {}) // the command ended at once: nothing to tell
  gate?.end('go\n')
  return { child, held }
}

/** As execvp would find it: a path with a slash as is, else the first executable on PATH. */
function runnable(file: string, path: string | undefined): boolean {
  const candidates = file.includes('/') ? [file] : (path ?? '/usr/bin:/bin').split(delimiter).map((dir) => join(dir || '.', file))
  return candidates.some((candidate) => {
    try {
      accessSync(candidate, constants.X_OK)
      return statSync(candidate).isFile()
    } catch {
      return false
    }
  })
}
