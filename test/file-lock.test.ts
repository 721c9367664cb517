import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { acquireFileLock, acquireFileLockSync, registered, FileLock, FileLockHeldError, LockHeldError, LockTimeoutError, type LockCompromisedError } from '../src/index.js'
import { fixtures, HOLDER_EXITS, makeTempDir, runNode, startNode } from './helpers/child.js'

let tmp: ReturnType<typeof makeTempDir>
let resource: string
let lockDir: string
beforeEach(() => {
  tmp = makeTempDir()
  resource = join(tmp.dir, 'cache')
  lockDir = `${resource}.lock`
})
afterEach(() => tmp.cleanup())

const child = join(fixtures, 'file-lock.mjs')
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!)
const tryInChild = async (options: object = {}) => {
  const r = await runNode(child, ['try', resource, JSON.stringify(options)])
  expect(r.stderr).toBe('')
  return lastJson(r.stdout)
}
const ago = (path: string, ms: number) => utimesSync(path, new Date(Date.now() - ms), new Date(Date.now() - ms))

describe('the lock', () => {
  it('is a <path>.lock directory; release() removes it, unregisters, and is idempotent', () => {
    const before = registered().length
    const lock = acquireFileLockSync(resource)
    expect(lock).toBeInstanceOf(FileLock)
    expect(lock.path).toBe(resource)
    expect(lock.lockfilePath).toBe(lockDir)
    expect(statSync(lockDir).isDirectory()).toBe(true)
    expect(registered()[0]!.label).toBe(`file lock ${resource}`)
    expect(lock.released).toBe(false)
    expect(lock.compromised).toBeNull()
    lock.release()
    expect(lock.released).toBe(true)
    expect(existsSync(lockDir)).toBe(false)
    expect(registered().length).toBe(before)
    lock.release()
  })

  it('`using` and `await using` release at the end of the scope', async () => {
    {
      using _lock = acquireFileLockSync(resource)
      expect(existsSync(lockDir)).toBe(true)
    }
    expect(existsSync(lockDir)).toBe(false)
    {
      await using _lock = await acquireFileLock(resource)
      expect(existsSync(lockDir)).toBe(true)
    }
    expect(existsSync(lockDir)).toBe(false)
  })

  it('locks a resource that does not exist (default), resolving the path to an absolute one', async () => {
    const relative = join(tmp.dir, 'sub', '..', 'not-yet')
    await using lock = await acquireFileLock(relative)
    expect(lock.path).toBe(join(tmp.dir, 'not-yet'))
    expect(existsSync(join(tmp.dir, 'not-yet'))).toBe(false)
    expect(existsSync(join(tmp.dir, 'not-yet.lock'))).toBe(true)
  })

  it('mustExist: true refuses a missing resource with ENOENT; a missing directory is ENOENT too', async () => {
    await expect(acquireFileLock(resource, { mustExist: true })).rejects.toMatchObject({ code: 'ENOENT', path: resource })
    writeFileSync(resource, '')
    acquireFileLockSync(resource, { mustExist: true }).release()
    expect(() => acquireFileLockSync(join(tmp.dir, 'no-dir', 'x'))).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(readdirSync(tmp.dir)).toEqual(['cache'])
  })

  it('locks the real path: a symlink and its target share one lock', () => {
    writeFileSync(resource, '')
    const link = join(tmp.dir, 'link')
    symlinkSync(resource, link)
    using lock = acquireFileLockSync(link)
    expect(lock.lockfilePath).toBe(lockDir)
    expect(() => acquireFileLockSync(resource)).toThrow(expect.objectContaining({ code: 'ELOCKED' }))
  })

  it('honours lockfilePath, resolved to an absolute path', () => {
    using lock = acquireFileLockSync(resource, { lockfilePath: join(tmp.dir, 'elsewhere.lock') })
    expect(lock.lockfilePath).toBe(join(tmp.dir, 'elsewhere.lock'))
    expect(readdirSync(tmp.dir)).toEqual(['elsewhere.lock'])
  })

  it('held: ELOCKED naming the lock path, that no owner is recorded, when it was last refreshed, and what to do', () => {
    // Held through plain proper-lockfile, so nothing tells exitguard who holds it.
    const unlock = lockfile.lockSync(resource, { realpath: false })
    let err: unknown
    try {
      acquireFileLockSync(resource)
    } catch (e) {
      err = e
    } finally {
      unlock()
    }
    expect(err).toBeInstanceOf(FileLockHeldError)
    expect(err).toBeInstanceOf(LockHeldError)
    const held = err as FileLockHeldError
    expect(held).toMatchObject({ code: 'ELOCKED', path: resource, lockfilePath: lockDir, owner: { pid: 0 } })
    expect(held.lastRefreshedAt).toBeInstanceOf(Date)
    expect(held.message).toContain(lockDir)
    expect(held.message).toContain('records no owner')
    expect(held.message).toContain(`last refreshed at ${held.lastRefreshedAt!.toISOString()}`)
    expect(held.message).toContain('"wait" option')
    expect(held.message).toContain(`rmdir ${lockDir}`)
  })

  it('a second acquire in the same process is refused (not re-entrant), and the message says so', () => {
    using _lock = acquireFileLockSync(resource)
    expect(() => acquireFileLockSync(resource)).toThrow(expect.objectContaining({ code: 'ELOCKED', message: expect.stringContaining('is already held by this process') }))
  })

  it('defaults match the docs: stale 10000 ms (a 5 s old lock is held, an 11 s old one is taken over)', () => {
    mkdirSync(lockDir)
    ago(lockDir, 5000)
    expect(() => acquireFileLockSync(resource)).toThrow(expect.objectContaining({ code: 'ELOCKED' }))
    ago(lockDir, 11_000)
    acquireFileLockSync(resource).release()
    expect(existsSync(lockDir)).toBe(false)
  })
})

describe('plain proper-lockfile users and exitguard see each other', () => {
  beforeEach(() => writeFileSync(resource, '')) // plain proper-lockfile needs the file (realpath)

  it('exitguard holds (another process): plain check() is true and plain lock() fails ELOCKED', async () => {
    const holder = startNode(child, ['hold', resource])
    await holder.waitFor('ready')
    expect(await lockfile.check(resource)).toBe(true)
    await expect(lockfile.lock(resource)).rejects.toMatchObject({ code: 'ELOCKED' })
    const r = await runNode(child, ['plain-check', resource])
    expect(lastJson(r.stdout)).toEqual({ held: true, code: 'ELOCKED' })
    holder.child.kill('SIGTERM')
    expect((await holder.done).signal).toBe('SIGTERM')
    expect(await lockfile.check(resource)).toBe(false)
  })

  it('plain proper-lockfile holds (another process): exitguard gets ELOCKED, then the lock once it is let go', async () => {
    const holder = startNode(child, ['plain', resource])
    await holder.waitFor('ready')
    await expect(acquireFileLock(resource)).rejects.toMatchObject({ code: 'ELOCKED', name: 'FileLockHeldError' })
    expect(await tryInChild({ sync: true })).toMatchObject({ ok: false, code: 'ELOCKED' })
    const waiting = acquireFileLock(resource, { wait: 30_000 })
    holder.child.kill('SIGINT')
    const lock = await waiting
    expect(lock.lockfilePath).toBe(lockDir)
    lock.release()
  })

  it('exitguard holds (this process): plain check() is true', async () => {
    using _lock = acquireFileLockSync(resource)
    expect(lockfile.checkSync(resource)).toBe(true)
    expect(() => lockfile.lockSync(resource)).toThrow(expect.objectContaining({ code: 'ELOCKED' }))
  })
})

describe('waiting', () => {
  it('gets the lock when the holder exits', async () => {
    const holder = startNode(child, ['hold', resource])
    await holder.waitFor('ready')
    const waiting = acquireFileLock(resource, { wait: 30_000 })
    holder.child.kill('SIGTERM')
    ;(await waiting).release()
  })

  it('gives up after `wait` ms with ETIMEDOUT (async and sync faces)', async () => {
    const holder = startNode(child, ['hold', resource])
    await holder.waitFor('ready')
    const err = await acquireFileLock(resource, { wait: 60 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LockTimeoutError)
    expect(err).toMatchObject({ code: 'ETIMEDOUT', lockfilePath: lockDir, owner: { pid: 0 } })
    expect((err as Error).message).toContain('records no owner')
    expect(() => acquireFileLockSync(resource, { wait: 40 })).toThrow(expect.objectContaining({ code: 'ETIMEDOUT' }))
    holder.child.kill('SIGTERM')
    await holder.done
  })

  it('rejects with the signal reason when aborted', async () => {
    using _lock = acquireFileLockSync(resource)
    const controller = new AbortController()
    const waiting = acquireFileLock(resource, { wait: 60_000, signal: controller.signal })
    const reason = new Error('user gave up')
    setTimeout(() => controller.abort(reason), 20)
    await expect(waiting).rejects.toBe(reason)
    await expect(acquireFileLock(resource, { signal: AbortSignal.abort('early') })).rejects.toBe('early')
  })
})

describe('every exit path of the holder removes the lock directory', () => {
  for (const [how, code] of HOLDER_EXITS) {
    it(`${how}: exit code ${code}`, async () => {
      const r = await runNode(child, ['hold', resource, '{}', how])
      expect({ code: r.code, signal: r.signal }).toEqual({ code, signal: null })
      expect(readdirSync(tmp.dir)).toEqual([])
    })
  }
  it('sync face, exit3', async () => {
    const r = await runNode(child, ['hold', resource, '{"sync":true}', 'exit3'])
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 3, signal: null })
    expect(readdirSync(tmp.dir)).toEqual([])
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${signal}: dies by ${signal}`, async () => {
      const holder = startNode(child, ['hold', resource])
      await holder.waitFor('ready')
      holder.child.kill(signal)
      const r = await holder.done
      expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal })
      expect(r.stderr).toBe('')
      expect(readdirSync(tmp.dir)).toEqual([])
    })
  }

  it('SIGKILL leaves the lock directory, which is taken over once stale', async () => {
    const holder = startNode(child, ['hold', resource, '{"stale":2000}'])
    await holder.waitFor('ready')
    holder.child.kill('SIGKILL')
    expect((await holder.done).signal).toBe('SIGKILL')
    expect(statSync(lockDir).isDirectory()).toBe(true)
    const lock = await acquireFileLock(resource, { stale: 2000, wait: 30_000 })
    expect(lock.lockfilePath).toBe(lockDir)
    lock.release()
  })
})

describe('a lost lock is reported, never thrown', () => {
  it('onCompromised gets ECOMPROMISED; the process stays alive; at exit it leaves the new holder alone', async () => {
    const holder = startNode(child, ['hold', resource, JSON.stringify({ stale: 2000, update: 1000, report: true, throwInHandler: true })])
    await holder.waitFor('ready')
    rmdirSync(lockDir)
    await holder.waitFor(
      '{"compromised":"ECOMPROMISED","name":"LockCompromisedError","message":' +
        JSON.stringify(`The lock ${resource} was lost while held: the lock directory ${lockDir} was deleted. Another process may now hold it too.`) +
        ',"same":true}',
    )
    mkdirSync(lockDir) // someone else's lock now
    holder.child.kill('SIGTERM')
    const r = await holder.done
    expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal: 'SIGTERM' })
    expect(r.stderr).toContain('onCompromised for')
    expect(r.stderr).toContain('handler threw')
    expect(existsSync(lockDir)).toBe(true)
  })

  it('by default, a warning on stderr', async () => {
    const holder = startNode(child, ['hold', resource, JSON.stringify({ stale: 2000, update: 1000 })])
    await holder.waitFor('ready')
    rmdirSync(lockDir)
    await expect.poll(() => holder.stderr(), { timeout: 20_000, interval: 50 }).toContain('was lost while held')
    expect(holder.child.exitCode).toBeNull()
    holder.child.kill('SIGINT')
    const r = await holder.done
    expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal: 'SIGINT' })
  })

  it('in this process: compromised is set and release() leaves the directory', async () => {
    const reports: LockCompromisedError[] = []
    const lock = await acquireFileLock(resource, { stale: 2000, update: 1000, onCompromised: (e) => reports.push(e) })
    rmdirSync(lockDir)
    await expect.poll(() => reports.length, { timeout: 20_000, interval: 50 }).toBe(1)
    expect(lock.compromised).toBe(reports[0])
    expect(lock.compromised!.code).toBe('ECOMPROMISED')
    mkdirSync(lockDir)
    lock.release()
    expect(lock.released).toBe(true)
    expect(existsSync(lockDir)).toBe(true)
  })
})

describe('bad input gets typed errors', () => {
  const cases: [string, () => unknown, string][] = [
    ['missing path', () => acquireFileLockSync(undefined as unknown as string), 'ERR_INVALID_ARG_TYPE'],
    ['empty path', () => acquireFileLockSync(''), 'ERR_INVALID_ARG_VALUE'],
    ['NUL in path', () => acquireFileLockSync('a\0b'), 'ERR_INVALID_ARG_VALUE'],
    ['options not an object', () => acquireFileLockSync('x', 5 as never), 'ERR_INVALID_ARG_TYPE'],
    ['negative wait', () => acquireFileLockSync('x', { wait: -1 }), 'ERR_INVALID_ARG_VALUE'],
    ['wait not a number', () => acquireFileLockSync('x', { wait: '10' as never }), 'ERR_INVALID_ARG_VALUE'],
    ['NaN wait', () => acquireFileLockSync('x', { wait: NaN }), 'ERR_INVALID_ARG_VALUE'],
    ['stale below 2000', () => acquireFileLockSync('x', { stale: 1000 }), 'ERR_INVALID_ARG_VALUE'],
    ['infinite stale', () => acquireFileLockSync('x', { stale: Infinity }), 'ERR_INVALID_ARG_VALUE'],
    ['update below 1000', () => acquireFileLockSync('x', { update: 500 }), 'ERR_INVALID_ARG_VALUE'],
    ['update above stale/2', () => acquireFileLockSync('x', { stale: 4000, update: 3000 }), 'ERR_INVALID_ARG_VALUE'],
    ['mustExist not a boolean', () => acquireFileLockSync('x', { mustExist: 'yes' as never }), 'ERR_INVALID_ARG_TYPE'],
    ['onCompromised not a function', () => acquireFileLockSync('x', { onCompromised: 'warn' as never }), 'ERR_INVALID_ARG_TYPE'],
    ['lockfilePath empty', () => acquireFileLockSync('x', { lockfilePath: '' }), 'ERR_INVALID_ARG_VALUE'],
    ['signal in the sync face', () => acquireFileLockSync('x', { signal: AbortSignal.timeout(10) } as never), 'ESYNC'],
  ]
  for (const [name, call, code] of cases) {
    it(name, () => {
      expect(call).toThrow(expect.objectContaining({ code }))
    })
  }
  it('messages name the option and the value', () => {
    expect(() => acquireFileLockSync('x', { stale: 1000 })).toThrow(/"stale" argument .*2000.*Received number 1000/)
  })
  it('signal not an AbortSignal (async face)', async () => {
    await expect(acquireFileLock('x', { signal: {} as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' })
  })
  it('nothing was created', () => {
    expect(readdirSync(tmp.dir)).toEqual([])
  })
})
