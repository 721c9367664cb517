import pg from 'pg'
import { expectTypeOf, test } from 'vitest'
import { acquirePgLock, parsePgLockUrl, type PgLock } from '../src/index.js'

test('a real pg.Client is accepted as `client`; the lock is async-disposable', () => {
  expectTypeOf(acquirePgLock).toBeCallableWith('k', { client: new pg.Client() })
  expectTypeOf(acquirePgLock).toBeCallableWith(1n, { connectionString: 'postgres://h/db', wait: 1000, signal: AbortSignal.timeout(1) })
  expectTypeOf(acquirePgLock).returns.resolves.toEqualTypeOf<PgLock>()
  expectTypeOf<PgLock>().toMatchTypeOf<AsyncDisposable>()
  expectTypeOf<PgLock['lockId']>().toEqualTypeOf<bigint>()
  expectTypeOf(parsePgLockUrl).returns.toEqualTypeOf<{ connectionString: string; key: string }>()
})
