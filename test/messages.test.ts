// Messages for the person at the terminal, and refusals of paths that can't be lock files.
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { acquireFileLockSync, acquirePidLock, acquirePidLockSync, readPidLock, reapPidLock } from '../src/index.js'
import { fixtures, makeTempDir, runNode } from './helpers/child.js'

let tmp: ReturnType<typeof makeTempDir>
beforeEach(() => {
  tmp = makeTempDir()
})
afterEach(() => tmp.cleanup())

describe('a lock held elsewhere in this very process', () => {
  // Issue 9 #11: after a worker's terminate() the main thread was told "held by PID <its own
  // PID> … (kill <its own PID>)".
  it('left by a terminated worker: "held by this process", never "kill <own PID>"', async () => {
    const path = join(tmp.dir, 'app.pid')
    // Without a keeper: the worker's keeper (on by default in workers) would release the lock
    // within ms of terminate(), which test/keeper.test.ts checks; this is the message without one.
    const r = await runNode(join(fixtures, 'worker-lock.mjs'), [path], { env: { EXITGUARD_KEEPER: '0' } })
    expect(r.stderr).toBe('')
    const { pid, sync, timeout } = JSON.parse(r.stdout) as Record<string, { code: string; message: string }> & { pid: number }
    expect(sync).toMatchObject({ code: 'ELOCKED', message: expect.stringContaining(`The lock ${path} is held by this process (another thread or copy of exitguard)`) })
    expect(sync!.message).toContain('a worker ended by terminate() with its keeper turned off leaves its locks held until this process exits')
    expect(timeout).toMatchObject({ code: 'ETIMEDOUT', message: expect.stringContaining('still held by this process (another thread or copy of exitguard)') })
    for (const { message } of [sync!, timeout!]) {
      expect(message).not.toContain(`kill ${pid}`)
      expect(message).not.toContain(`PID ${pid}`)
    }
  })
})

describe('a lock path must name a file', () => {
  // Issue 11: "app.pid/" silently locked "app.pid".
  it.each(['app.pid/', 'sub/', '.', '..', 'sub/.', 'sub/..'])('%j is refused with ERR_INVALID_ARG_VALUE naming the path, and nothing is created', async (name) => {
    // Not join(): it would normalise "sub/." away.
    const path = name.startsWith('.') ? name : `${tmp.dir}/${name}`
    const refused = expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', path, message: expect.stringContaining(`The "path" argument must name a file`) })
    expect(() => acquirePidLockSync(path)).toThrow(refused)
    await expect(acquirePidLock(path)).rejects.toThrow(refused)
    expect(() => readPidLock(path)).toThrow(refused)
    expect(() => reapPidLock(path)).toThrow(refused)
    expect(() => acquireFileLockSync(path)).toThrow(refused)
    expect(readdirSync(tmp.dir)).toEqual([])
    expect(existsSync(join(tmp.dir, 'app.pid'))).toBe(false)
  })

  it('a name that merely ends in a dot is a file name, and is taken', () => {
    using lock = acquirePidLockSync(join(tmp.dir, 'app.'))
    expect(existsSync(lock.path)).toBe(true)
  })
})
