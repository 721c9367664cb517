import { expectTypeOf, test } from 'vitest'
import { acquirePidLock, acquirePidLockSync, readPidLock, LockHeldError, type PidLock, type LockOwner, type PidLockStatus } from '../src/index.js'

test('PID lock types', () => {
  expectTypeOf(acquirePidLockSync).returns.toEqualTypeOf<PidLock>()
  expectTypeOf(acquirePidLock).returns.toEqualTypeOf<Promise<PidLock>>()
  expectTypeOf<PidLock['tookOverFrom']>().toEqualTypeOf<LockOwner | null>()
  expectTypeOf<PidLock>().toMatchTypeOf<Disposable>()
  expectTypeOf(readPidLock).returns.toEqualTypeOf<PidLockStatus>()
  expectTypeOf<PidLockStatus['state']>().toEqualTypeOf<'free' | 'held' | 'stale'>()
  expectTypeOf<LockHeldError['owner']>().toEqualTypeOf<LockOwner>()
  expectTypeOf<LockHeldError['code']>().toEqualTypeOf<string>()
  // @ts-expect-error the sync face takes no AbortSignal
  acquirePidLockSync('/tmp/x.pid', { signal: AbortSignal.abort() })
  // @ts-expect-error wait is a number of milliseconds
  acquirePidLockSync('/tmp/x.pid', { wait: true })
})
