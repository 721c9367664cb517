import { writeSync } from 'node:fs'

/**
 * Writes one line to stderr, synchronously (at exit there is no later tick to flush a stream),
 * and never throws: with stderr closed there is nobody left to tell.
 */
export function writeStderr(line: string): void {
  try {
    writeSync(2, line.endsWith('\n') ? line : line + '\n')
  } catch {
    // no stderr
  }
}
