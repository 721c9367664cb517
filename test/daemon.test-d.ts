import { expectTypeOf, test } from 'vitest'
import { signalHolder, stopHolder, type LockOwner, type SignalResult, type StopHolderOptions, type StopResult } from '../src/index.js'

test('daemon types', () => {
  expectTypeOf(stopHolder).returns.toEqualTypeOf<Promise<StopResult>>()
  expectTypeOf(signalHolder).returns.toEqualTypeOf<SignalResult>()
  expectTypeOf<StopResult['how']>().toEqualTypeOf<'not-running' | 'signal' | 'kill' | 'keeper' | 'timeout'>()
  expectTypeOf<StopResult['owner']>().toEqualTypeOf<LockOwner | null>()
  expectTypeOf<StopResult['pid']>().toEqualTypeOf<number | null>()
  expectTypeOf<StopHolderOptions['signal']>().toEqualTypeOf<NodeJS.Signals | number | undefined>()
  expectTypeOf<StopHolderOptions['killSignal']>().toEqualTypeOf<NodeJS.Signals | number | undefined>()
  void stopHolder('/tmp/x.pid', { killSignal: 'SIGINT', timeout: 1000 })
  // @ts-expect-error a kill signal, not an AbortSignal
  void stopHolder('/tmp/x.pid', { killSignal: AbortSignal.timeout(1000) })
  // @ts-expect-error timeout is a number of milliseconds
  void stopHolder('/tmp/x.pid', { timeout: '10s' })
  // @ts-expect-error a signal name Node knows
  signalHolder('/tmp/x.pid', 'SIGNOPE')
})
