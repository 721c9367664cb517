import { expectTypeOf, test } from 'vitest'
import {
  acquirePidLock,
  acquirePidLockSync,
  readPidLock,
  type LockHeldError,
  type LockTimeoutError,
  type ExitguardErrorCode,
  type ExitguardError,
  type PidLock,
  type LockOwner,
  type PidLockStatus,
} from '../src/index.js'

test('PID lock types', () => {
  // without data, data is null
  expectTypeOf(acquirePidLockSync('/tmp/x.pid')).toEqualTypeOf<PidLock<null>>()
  expectTypeOf(acquirePidLock('/tmp/x.pid')).toEqualTypeOf<Promise<PidLock<null>>>()
  // data is generic: the lock's owner carries its type
  expectTypeOf(acquirePidLockSync('/tmp/x.pid', { data: { port: 8080 } }).owner.data).toEqualTypeOf<{ port: number }>()
  expectTypeOf(acquirePidLock('/tmp/x.pid', { data: 'job-1' })).toEqualTypeOf<Promise<PidLock<string>>>()
  expectTypeOf(readPidLock<{ port: number }>('/tmp/x.pid')).toEqualTypeOf<PidLockStatus<{ port: number }>>()
  expectTypeOf<PidLock['tookOverFrom']>().toEqualTypeOf<LockOwner | null>()
  expectTypeOf<PidLock>().toMatchTypeOf<Disposable>()
  expectTypeOf(readPidLock).returns.toEqualTypeOf<PidLockStatus>()
  expectTypeOf<PidLockStatus['state']>().toEqualTypeOf<'free' | 'held' | 'stale'>()
  // held and stale always carry the owner
  expectTypeOf<Extract<PidLockStatus, { state: 'held' }>['owner']>().toEqualTypeOf<LockOwner>()
  expectTypeOf<Extract<PidLockStatus, { state: 'stale' }>['reason']>().toEqualTypeOf<string>()
  expectTypeOf<Extract<PidLockStatus, { state: 'free' }>['owner']>().toEqualTypeOf<undefined>()
  expectTypeOf<LockHeldError['owner']>().toEqualTypeOf<LockOwner>()
  expectTypeOf<LockHeldError<{ port: number }>['owner']['data']>().toEqualTypeOf<{ port: number }>()
  expectTypeOf<LockHeldError['code']>().toEqualTypeOf<'ELOCKED' | 'ETIMEDOUT'>()
  expectTypeOf<LockTimeoutError['code']>().toEqualTypeOf<'ETIMEDOUT'>()
  expectTypeOf<ExitguardError['code']>().toEqualTypeOf<ExitguardErrorCode>()
  expectTypeOf<'ELOCKED'>().toMatchTypeOf<ExitguardErrorCode>()
  expectTypeOf<'ELOKED'>().not.toMatchTypeOf<ExitguardErrorCode>()
  // every option accepts undefined (exactOptionalPropertyTypes)
  acquirePidLock('/tmp/x.pid', { wait: undefined, signal: undefined as AbortSignal | undefined, data: undefined, command: undefined })
  // @ts-expect-error the sync face takes no AbortSignal
  acquirePidLockSync('/tmp/x.pid', { signal: AbortSignal.abort() })
  // @ts-expect-error wait is a number of milliseconds
  acquirePidLockSync('/tmp/x.pid', { wait: true })
})

test('readPidLock says who wrote the record and whether it may be acted on', () => {
  expectTypeOf<Extract<PidLockStatus, { state: 'held' }>['fileOwner']>().toEqualTypeOf<number | null>()
  expectTypeOf<Extract<PidLockStatus, { state: 'stale' }>['untrusted']>().toEqualTypeOf<string | null>()
  expectTypeOf<Extract<PidLockStatus, { state: 'free' }>['untrusted']>().toEqualTypeOf<undefined>()
})
