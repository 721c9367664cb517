// Shared locks and slots (docs/shared-locks.md): real processes, real SIGKILLs, real files.
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { acquirePidLock, acquirePidLockSync, LockHeldError, readPidLock, stopHolder } from '../src/index.js'
import { fixtures, makeTempDir, startNode, type RunningChild } from './helpers/child.js'
import { eventually } from './helpers/keepers.js'

const fixture = join(fixtures, 'pid-lock.mjs')
let tmp: ReturnType<typeof makeTempDir>
let lock: string
const children: RunningChild[] = []
beforeEach(() => {
  tmp = makeTempDir('exitguard-shared-')
  lock = join(tmp.dir, 'job.pid')
})
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.child.kill('SIGKILL')
    await c.done
  }
  tmp.cleanup()
})

async function hold(options: object): Promise<RunningChild> {
  const c = startNode(fixture, ['hold', lock, JSON.stringify(options)])
  children.push(c)
  await c.waitFor('ready')
  return c
}

describe('slots: a semaphore of PID locks', () => {
  it("at most N holders; the next is told who holds each slot; a SIGKILLed holder's slot is taken over", async () => {
    const a = await hold({ slots: 2 })
    const b = await hold({ slots: 2 })
    expect(readdirSync(tmp.dir).sort()).toEqual(['job.pid.slot1', 'job.pid.slot2'])
    let refused: unknown
    try {
      acquirePidLockSync(lock, { slots: 2 })
    } catch (err) {
      refused = err
    }
    expect(refused).toBeInstanceOf(LockHeldError)
    expect((refused as Error).message).toMatch(new RegExp(`All 2 slots of the lock ${lock} are held: slot 1: PID (${a.pid}|${b.pid}) .*; slot 2: PID (${a.pid}|${b.pid})`))
    a.child.kill('SIGKILL')
    await a.done
    using mine = acquirePidLockSync(lock, { slots: 2 })
    expect(mine).toMatchObject({ path: expect.stringMatching(/\.slot[12]$/), tookOverFrom: { pid: a.pid } })
    expect(mine.slot).toBe(Number(mine.path.slice(-1)))
  })

  it('a waiter gets the slot that is released, promptly', async () => {
    const a = await hold({ slots: 1 })
    const waiting = acquirePidLock(lock, { slots: 1, wait: 30_000 })
    a.child.kill('SIGTERM')
    const got = await waiting
    expect(got.slot).toBe(1)
    got.release()
    expect(existsSync(`${lock}.slot1`)).toBe(false)
  })

  it("a slot file that can't be used (a symlink planted there) costs only that slot", () => {
    symlinkSync(join(tmp.dir, 'elsewhere'), `${lock}.slot1`)
    using mine = acquirePidLockSync(lock, { slots: 2 })
    expect(mine.slot).toBe(2)
  })

  it('a slot holder is trusted where it is, as any PID lock: stopHolder ends it', async () => {
    const a = await hold({ slots: 2 })
    const slot = `${lock}.slot1`
    expect(readPidLock(slot)).toMatchObject({ state: 'held', untrusted: null })
    await expect(stopHolder(slot, { timeout: 30_000 })).resolves.toMatchObject({ stopped: true, how: 'signal', pid: a.pid })
    await a.done
  })

  it('bad values: a typed error naming the option', () => {
    for (const slots of [0, 1.5, 1001, '2']) {
      expect(() => acquirePidLockSync(lock, { slots } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"slots"') }))
    }
    expect(() => acquirePidLockSync(lock, { slots: 2, shared: true })).toThrow(/cannot be combined with shared/)
    expect(() => acquirePidLockSync(lock, { slots: 2, onMessage: () => 1 })).toThrow(/cannot be combined with onMessage/)
    expect(readdirSync(tmp.dir)).toEqual([])
  })
})

describe('shared locks: many shared holders or one exclusive', () => {
  it('two shared holders at once; an exclusive one is refused naming one, waits for both, and blocks new shared ones meanwhile', async () => {
    const a = await hold({ shared: true })
    const b = await hold({ shared: true })
    expect(readdirSync(`${lock}.readers`)).toHaveLength(2)
    expect(() => acquirePidLockSync(lock)).toThrow(expect.objectContaining({ code: 'ELOCKED', message: expect.stringMatching(/is held shared by PID \d+ .* and up to 1 more/) }))
    const exclusive = startNode(fixture, ['try', lock, '{"wait":30000}'])
    children.push(exclusive)
    // The waiting exclusive holder has the lock file: a new shared holder must wait behind it.
    expect(await eventually(() => existsSync(lock))).toBe(true)
    expect(() => acquirePidLockSync(lock, { shared: true })).toThrow(expect.objectContaining({ code: 'ELOCKED', message: expect.stringContaining(`is held exclusively by PID ${exclusive.pid}`) }))
    a.child.kill('SIGKILL') // a dead shared holder holds nothing
    await a.done
    expect(exclusive.stdout()).toBe('') // still waiting for b
    b.child.kill('SIGTERM')
    await b.done
    const r = await exclusive.done
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, pid: exclusive.pid })
    expect(existsSync(`${lock}.readers`)).toBe(false) // its last record gone, the directory went too
    expect(existsSync(lock)).toBe(false)
  })

  it("a shared holder is trusted where it is: its record in the readers' directory can be stopped", async () => {
    const a = await hold({ shared: true })
    const [token] = readdirSync(`${lock}.readers`)
    const record = `${lock}.readers/${token}`
    expect(readPidLock(record)).toMatchObject({ state: 'held', untrusted: null, owner: { pid: a.pid } })
    await expect(stopHolder(record, { timeout: 30_000 })).resolves.toMatchObject({ stopped: true, pid: a.pid })
    await a.done
  })

  it('a shared holder waits for an exclusive one', async () => {
    const x = await hold({})
    const shared = acquirePidLock(lock, { shared: true, wait: 30_000 })
    x.child.kill('SIGTERM')
    const got = await shared
    expect(got).toMatchObject({ shared: true, path: expect.stringMatching(/job\.pid\.readers\/[0-9a-f]{32}$/) })
    got.release()
    expect(readdirSync(`${lock}.readers`)).toEqual([])
  })

  it("a readers' directory another user could write to is refused (EUNSAFE)", () => {
    mkdirSync(`${lock}.readers`, { mode: 0o777 })
    chmodSync(`${lock}.readers`, 0o777)
    expect(() => acquirePidLockSync(lock, { shared: true })).toThrow(expect.objectContaining({ code: 'EUNSAFE', message: expect.stringContaining('mode 777') }))
  })

  it('torture: contenders take it shared or exclusive at random under random SIGKILLs; never an exclusive holder beside another', async () => {
    const markers = join(tmp.dir, 'markers')
    mkdirSync(markers)
    const spawnOne = () => {
      const c = startNode(join(fixtures, 'shared-torture.mjs'), [lock, markers], { timeout: 120_000 })
      children.push(c)
      return c
    }
    const live = Array.from({ length: 4 }, spawnOne)
    const all = [...live]
    const deadline = Date.now() + 6000
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 200))
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0]!
      victim.child.kill('SIGKILL')
      const fresh = spawnOne()
      live.push(fresh)
      all.push(fresh)
    }
    for (const c of live) c.child.kill('SIGKILL')
    const out = (await Promise.all(all.map((c) => c.done))).map((r) => r.stdout).join('')
    expect(out).not.toContain('VIOLATION')
    expect(out).not.toContain('ERROR') // a waiting acquire never fails (it did with ENOENT when the readers' directory went)
    // Both modes happened, many times (a count, not a time).
    expect(out.split('\n').filter((l) => l === 'S').length).toBeGreaterThan(20)
    expect(out.split('\n').filter((l) => l === 'X').length).toBeGreaterThan(10)
  })
})
