const sleeper = new Int32Array(new SharedArrayBuffer(4))

/** Blocks this thread for `ms` milliseconds (a synchronous wait between polls). */
export function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms)
}
