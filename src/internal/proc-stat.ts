/**
 * The fields of a Linux `/proc/<pid>/stat` (or task `stat`) line from field 3 (the state) on:
 * `[0]` is the state (R, S, Z, …), `[19]` the start time (field 22). The command name (field 2)
 * may hold spaces, parentheses and even newlines, so fields are counted after its last ')'.
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** True for a state of a task that has exited: a zombie (Z) or dead (X). */
export function isExitedState(state: string | undefined): boolean {
  return state === 'Z' || state === 'X'
}
