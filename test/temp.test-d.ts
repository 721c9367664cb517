import { expectTypeOf, test } from 'vitest'
import { reapOrphans, tempDir, tempDirSync, tempFile, tempFileSync, withTempDir, withTempFile, type ReapedEntry, type TempDir, type TempFile } from '../src/index.js'

test('temp guard types', () => {
  expectTypeOf(tempFileSync).returns.toEqualTypeOf<TempFile>()
  expectTypeOf(tempFile).returns.toEqualTypeOf<Promise<TempFile>>()
  expectTypeOf(tempDirSync).returns.toEqualTypeOf<TempDir>()
  expectTypeOf(tempDir).returns.toEqualTypeOf<Promise<TempDir>>()
  expectTypeOf<TempFile['fd']>().toEqualTypeOf<number | null>()
  expectTypeOf<TempDir['path']>().toEqualTypeOf<string>()
  expectTypeOf(withTempDir((d) => d.path)).toEqualTypeOf<string>()
  expectTypeOf(withTempFile(async () => 1)).toEqualTypeOf<Promise<number>>()
  expectTypeOf(reapOrphans).returns.toEqualTypeOf<ReapedEntry[]>()
  expectTypeOf<ReapedEntry['kind']>().toEqualTypeOf<'file' | 'dir' | 'pid-lock'>()
  // @ts-expect-error a prefix must be a string
  tempDirSync({ prefix: 1 })
})
