// Windows refuses a name for a moment where POSIX would not: a file deleted while open keeps its
// name until its last handle closes where the delete is not POSIX-style (Wine, FAT, older
// Windows; "delete pending": EPERM or EACCES on open, link or rename), and a file that is open
// can't be renamed over (EPERM). Those last as long as a reader's open, microseconds: try again.
import { sleepSync } from '../internal/sleep-sync.js'

const BUSY = new Set(['EPERM', 'EACCES', 'EBUSY'])
/** Tries, 1 ms apart: about 50 ms in all, far above a reader's open, before the error counts. */
const TRIES = 50

/** `fn()`, tried again on Windows while it fails with EPERM, EACCES or EBUSY; elsewhere once. */
export function retryWhileBusy<T>(fn: () => T): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return fn()
    } catch (err) {
      if (process.platform !== 'win32' || attempt >= TRIES || !BUSY.has((err as NodeJS.ErrnoException).code ?? '')) throw err
      sleepSync(1)
    }
  }
}
