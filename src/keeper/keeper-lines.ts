/**
 * The keeper's input, one line per entry: `+ID KIND FIELD...`, fields separated by one space.
 * LINES is the one definition of the format: the writers below build lines from it, and the
 * keeper's awk parser (keeper-awk.ts) is generated from it, so the two can't drift apart.
 * (docs/keeper.md shows the same table; a test checks it against this one.)
 *
 * A field of type `text` comes last and is taken whole up to the newline, so a path with spaces
 * is fine. A line can't hold a newline: an entry whose path has one is not given to the keeper
 * (it is still released in-process), and the writer returns null for it.
 */

/** What a field may hold, as a POSIX extended regular expression (awk's and JavaScript's alike). */
export const FIELD_TYPES = {
  /** A decimal number: a device or inode number, a PID, milliseconds, a Linux start time. */
  uint: '^[0-9]+$',
  /** A birth time as stat(1) prints it: GNU `%.9W` (s.ns), BSD `%B` (s), or "0" where unknown. */
  btime: '^[0-9]+([.][0-9]+)?$',
  /** A lock record's token. */
  token: '^[A-Za-z0-9_-]+$',
  /** The rest of the line, spaces included: a path, or macOS's `ps -o lstart` start time. */
  text: '.',
} as const

export type FieldType = keyof typeof FIELD_TYPES

/** Each kind of line: its letter, and its fields in order (name, type). */
export const LINES = {
  /** A temp file or dir: removed (rm -rf) if its (dev, ino, birth time) still match. */
  T: [
    ['dev', 'uint'],
    ['ino', 'uint'],
    ['btime', 'btime'],
    ['path', 'text'],
  ],
  /** A PID lock file: unlinked if it is a regular file, (dev, ino) match and it holds the token. */
  L: [
    ['dev', 'uint'],
    ['ino', 'uint'],
    ['token', 'token'],
    ['path', 'text'],
  ],
  /** A command: SIGTERM, SIGKILL after `grace` ms, each while its start time is `start`. */
  C: [
    ['pid', 'uint'],
    ['grace', 'uint'],
    ['start', 'text'],
  ],
  /** The process group a command leads (PGID = PID): the same, for the whole group. */
  G: [
    ['pid', 'uint'],
    ['grace', 'uint'],
    ['start', 'text'],
  ],
} as const satisfies Record<string, readonly (readonly [string, FieldType])[]>

export type LineKind = keyof typeof LINES
type FieldName<K extends LineKind> = (typeof LINES)[K][number][0]

/**
 * The line (without its `+ID`) for an entry of `kind`, its fields in LINES' order; null if a
 * value doesn't fit its field's type (a path with a newline, a token with a space).
 */
export function formatLine<K extends LineKind>(kind: K, values: Record<FieldName<K>, string>): string | null {
  const fields: string[] = [kind]
  for (const [name, type] of LINES[kind] as readonly (readonly [FieldName<K>, FieldType])[]) {
    const value = values[name]
    if (!fits(value, type)) return null
    fields.push(value)
  }
  return fields.join(' ')
}

function fits(value: string, type: FieldType): boolean {
  if (type === 'text') return value !== '' && !/[\n\r\0]/.test(value)
  return new RegExp(FIELD_TYPES[type]).test(value)
}

/** A temp file or directory, identified by its (dev, ino) and birth time ("0" where unknown). */
export function tempLine(dev: bigint, ino: bigint, birthtimeNs: bigint, path: string): string | null {
  return formatLine('T', { dev: String(dev), ino: String(ino), btime: birthTime(birthtimeNs), path })
}

/** As stat(1) prints it: GNU `%.9W` (s.ns) on Linux, BSD `%B` (whole seconds) on macOS. */
function birthTime(ns: bigint): string {
  if (ns <= 0n) return '0'
  const seconds = ns / 1_000_000_000n
  return process.platform === 'linux' ? `${seconds}.${String(ns % 1_000_000_000n).padStart(9, '0')}` : String(seconds)
}

/** A PID lock file, identified by its (dev, ino) and the token of its record. */
export function lockLine(dev: number, ino: number, token: string, path: string): string | null {
  return formatLine('L', { dev: String(dev), ino: String(ino), token, path })
}

/**
 * A command to stop: its PID, the ms between SIGTERM and SIGKILL, and its start time. `group`: the
 * command leads a process group of its own (PGID = PID), and the whole group is stopped (`G`).
 */
export function commandLine(pid: number, graceMs: number, startTime: string, group = false): string | null {
  if (!Number.isInteger(pid) || pid <= 0) return null
  return formatLine(group ? 'G' : 'C', { pid: String(pid), grace: String(Math.round(graceMs)), start: startTime })
}
