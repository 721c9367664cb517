import { expectTypeOf, test } from 'vitest'
import { acquirePidLock, acquirePidLockSync, messageHolder, type MessageError, type ExitguardError, type MessageSender, type MessageHandler, type LockOwner, type PidLockStatus } from '../src/index.js'

test('messaging types', () => {
  expectTypeOf(messageHolder).returns.toEqualTypeOf<Promise<unknown>>()
  expectTypeOf<MessageError>().toMatchTypeOf<ExitguardError>()
  expectTypeOf<MessageError['owner']>().toEqualTypeOf<LockOwner | null>()
  expectTypeOf<MessageSender>().toEqualTypeOf<{ pid: number; uid: number | null }>()
  expectTypeOf<MessageHandler>().parameters.toEqualTypeOf<[unknown, MessageSender]>()
  expectTypeOf<LockOwner['socket']>().toEqualTypeOf<string | undefined>()
  expectTypeOf<PidLockStatus['listening']>().toEqualTypeOf<boolean | undefined>()
  expectTypeOf<Extract<PidLockStatus, { state: 'held' }>['listening']>().toEqualTypeOf<boolean>()
  void acquirePidLock('/tmp/x.pid', { onMessage: async (m, sender) => ({ got: m, from: sender.pid }), messaging: { maxBytes: 4096 } })
  acquirePidLockSync('/tmp/x.pid', { onMessage: () => undefined })
  void messageHolder('/tmp/x.pid', { open: ['a'] }, { timeout: 1000, signal: AbortSignal.timeout(2000), maxBytes: 1024 })
  // @ts-expect-error timeout is a number of milliseconds
  void messageHolder('/tmp/x.pid', 1, { timeout: '1s' })
  // @ts-expect-error messaging options are named
  acquirePidLockSync('/tmp/x.pid', { onMessage: () => 1, messaging: { max: 1 } })
})
