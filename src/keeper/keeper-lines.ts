/**
 * The keeper's input, one line per entry (see keeper-program.ts for how each is released).
 * Fields are numbers or tokens without spaces; the path comes last, taken whole up to the
 * newline, so a path with spaces is fine. A path with a newline can't be a line: such an
 * entry is not given to the keeper (it is still released in-process), and null says so.
 */

/** A temp file or directory, identified by its (dev, ino). */
export function tempLine(dev: number, ino: number, path: string): string | null {
  return safe(path) ? `T ${dev} ${ino} ${path}` : null
}

/** A PID lock file, identified by its (dev, ino) and the token of its record. */
export function lockLine(dev: number, ino: number, token: string, path: string): string | null {
  return safe(path) && /^[\w-]+$/.test(token) ? `L ${dev} ${ino} ${token} ${path}` : null
}

/** A command to stop: its PID, the ms between SIGTERM and SIGKILL, and its start time. */
export function commandLine(pid: number, graceMs: number, startTime: string): string | null {
  return Number.isInteger(pid) && pid > 0 && safe(startTime) ? `C ${pid} ${Math.round(graceMs)} ${startTime}` : null
}

function safe(text: string): boolean {
  return text !== '' && !/[\n\r\0]/.test(text)
}
