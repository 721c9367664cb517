import { expectTypeOf, test } from 'vitest'
import { onExit, unregister, registered, gracefulExit, configure, type Registration, type RegisteredHandler } from '../src/index.js'

test('exit registry types', () => {
  // Arguments are checked against the handler's parameters.
  expectTypeOf(onExit((path: string, n: number) => path.length + n, '/tmp/x', 1)).toEqualTypeOf<Registration>()
  // @ts-expect-error the second argument must be a number
  onExit((path: string, n: number) => path.length + n, '/tmp/x', 'one')
  // @ts-expect-error a missing argument
  onExit((path: string) => path, undefined as never as [])
  expectTypeOf<Registration['unregister']>().returns.toEqualTypeOf<boolean>()
  expectTypeOf<Registration['label']>().toEqualTypeOf<string>()
  expectTypeOf(unregister).returns.toEqualTypeOf<number>()
  expectTypeOf(registered).returns.toEqualTypeOf<RegisteredHandler[]>()
  expectTypeOf(gracefulExit).returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf(configure).returns.toEqualTypeOf<{ asyncTimeout: number; keeper: boolean }>()
})
