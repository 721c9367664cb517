import type { ChildProcess } from 'node:child_process'
import { childProcess } from '../builtins.js'
import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs'
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
 * way), it is a plain `spawn`. `group`: the command leads a new session and process group
 * (Node's `detached`: setsid), and the keeper stops that whole group.
 */
export function spawnHeld(file: string, args: string[], env: NodeJS.ProcessEnv, graceMs: number, group = false): { child: ChildProcess; held: KeeperHold | null } {
  if (!threadKeeper() || !runnable(file, env.PATH)) return { child: childProcess().spawn(file, args, { stdio: 'inherit', env, detached: group }), held: null }
  const child = childProcess().spawn('/bin/sh', ['-c', GATE, 'sh', file, ...args], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], env, detached: group })
  const held = child.pid === undefined ? null : holdCommand(child.pid, graceMs, group)
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
      return statSync(candidate).isFile() && execFormatOk(candidate)
    } catch {
      return false
    }
  })
}

/**
 * Whether execve would take the file itself: ELF, or a #! line whose interpreter exists. Else
 * the plain spawn reports it (ENOEXEC, a missing interpreter) in a shell's words, where the
 * gate's `exec` would run a #!-less file as a shell script or print sh's own message.
 */
function execFormatOk(file: string): boolean {
  const head = Buffer.alloc(256)
  const fd = openSync(file, 'r')
  let n: number
  try {
    n = readSync(fd, head, 0, head.length, 0)
  } finally {
    closeSync(fd)
  }
  if (n >= 4 && head.readUInt32BE(0) === 0x7f454c46) return true // "\x7fELF"
  if (n < 2 || head[0] !== 0x23 || head[1] !== 0x21) return false // no "#!"
  const line = head.subarray(2, n).toString('latin1').split('\n')[0]!.trim()
  const interpreter = line.split(/[ \t]/)[0] ?? ''
  try {
    accessSync(interpreter, constants.X_OK)
    return true
  } catch {
    return false
  }
}
