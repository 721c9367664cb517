// Node built-ins that cost milliseconds to load (child_process and net pull in streams and
// sockets, crypto its providers), loaded on first use: `import 'exitguard'` is on the start-up
// path of every program that uses it, and most programs use one guard kind.
import type * as ChildProcess from 'node:child_process'
import type * as Crypto from 'node:crypto'
import type * as Net from 'node:net'
import type * as WorkerThreads from 'node:worker_threads'
import { lazyModule } from './require-lazily.cjs'

export const childProcess = lazyModule<typeof ChildProcess>('node:child_process')
export const crypto = lazyModule<typeof Crypto>('node:crypto')
export const net = lazyModule<typeof Net>('node:net')
export const workerThreads = lazyModule<typeof WorkerThreads>('node:worker_threads')
