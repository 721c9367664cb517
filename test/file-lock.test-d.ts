import { expectTypeOf, test } from 'vitest'
import { acquireFileLock, acquireFileLockSync, type FileLockHeldError, type LockHeldError, type FileLock, type LockOwner } from '../src/index.js'

test('file lock types', () => {
  expectTypeOf(acquireFileLockSync).returns.toEqualTypeOf<FileLock>()
  expectTypeOf(acquireFileLock).returns.toEqualTypeOf<Promise<FileLock>>()
  expectTypeOf<FileLock['release']>().returns.toEqualTypeOf<void>()
  expectTypeOf<FileLock['path']>().toEqualTypeOf<string>()
  expectTypeOf<FileLock>().toMatchTypeOf<Disposable & AsyncDisposable>()
  expectTypeOf<FileLockHeldError>().toMatchTypeOf<LockHeldError>()
  expectTypeOf<FileLockHeldError['owner']>().toEqualTypeOf<LockOwner<null>>()
  expectTypeOf<FileLockHeldError['lastRefreshedAt']>().toEqualTypeOf<Date | null>()
  // @ts-expect-error the sync face takes no AbortSignal
  acquireFileLockSync('x', { signal: AbortSignal.abort() })
  // @ts-expect-error stale is a number of ms
  acquireFileLockSync('x', { stale: '10s' })
})
