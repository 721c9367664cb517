/**
 * The keeper's input, one line per entry (see keeper-program.ts for how each is released).
 * Fields are numbers or tokens without spaces; the path comes last, taken whole up to the
 * newline, so a path with spaces is fine. A path with a newline can't be a line: such an
 * entry is not given to the keeper (it is still released in-process), and null says so.
 */

/** A temp file or directory, identified by its (dev, ino) and birth time ("0" where unknown). */
export function tempLine(dev: bigint, ino: bigint, birthtimeNs: bigint, path: string): string | null {
  return safe(path) ? `T ${dev} ${ino} ${birthTime(birthtimeNs)} ${path}` : null
}

/** As stat(1) prints it: GNU `%.9W` (s.ns) on Linux, BSD `%B` (whole seconds) on macOS. */
function birthTime(ns: bigint): string {
  if (ns <= 0n) return '0'
  const seconds = ns / 1_000_000_000n
  return process.platform === 'linux' ? `${seconds}.${String(ns % 1_000_000_000n).padStart(9, '0')}` : String(seconds)
}

/** A PID lock file, identified by its (dev, ino) and the token of its record. */
export function lockLine(dev: number, ino: number, token: string, path: string): string | null {
  return safe(path) && /^[\w-]+$/.test(token) ? `L ${dev} ${ino} ${token} ${path}` : null
}

/**
 * A command to stop: its PID, the ms between SIGTERM and SIGKILL, and its start time. `group`: the
 * command leads a process group of its own (PGID = PID), and the whole group is stopped (`G`).
 */
export function commandLine(pid: number, graceMs: number, startTime: string, group = false): string | null {
  return Number.isInteger(pid) && pid > 0 && safe(startTime) ? `${group ? 'G' : 'C'} ${pid} ${Math.round(graceMs)} ${startTime}` : null
}

function safe(text: string): boolean {
  return text !== '' && !/[\n\r\0]/.test(text)
}
