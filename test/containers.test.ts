// Containers, hostnames and clocks (issue 23): a container's PID 1, a hostname changed under a
// running holder, a lock file dated in the future. Real namespaces (unshare), real processes.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { acquirePidLockSync, readPidLock } from '../src/index.js'
import { selfIdentity } from '../src/owner/self.js'
import { NOBODY, nobodyCopy } from './helpers/as-nobody.js'
import { fixtures, makeTempDir, startCommand, type RunningChild } from './helpers/child.js'
import { eventually } from './helpers/keepers.js'

const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p))
const nsReason = process.platform !== 'linux' ? 'Linux only' : process.getuid?.() !== 0 ? 'needs root for unshare' : !unshare ? 'no unshare (util-linux)' : null
if (nsReason) console.warn(`exitguard: SKIPPING the namespace tests of containers.test.ts: ${nsReason}`)

let tmp: ReturnType<typeof makeTempDir>
const children: RunningChild[] = []
beforeEach(() => {
  tmp = makeTempDir('exitguard-ct-')
})
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.child.kill('SIGKILL')
    await c.done
  }
  tmp.cleanup()
})

/** The host PIDs of `pid`'s children. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

describe.skipIf(nsReason !== null)("an app that is its PID namespace's init (a container without --init)", () => {
  it('SIGTERM: the handlers release the lock and the app ends with 143, as the kernel ignores the re-raise', async () => {
    const lock = join(tmp.dir, 'app.pid')
    const run = startCommand(unshare!, ['--kill-child', '--pid', '--fork', '--mount-proc', process.execPath, join(fixtures, 'pid1.mjs'), lock])
    children.push(run)
    await run.waitFor('ready')
    expect(run.stdout().split('\n')[0]).toBe('1')
    const [app] = childrenOf(run.pid)
    expect(app).toBeGreaterThan(1)
    process.kill(app!, 'SIGTERM')
    // Without the fix the app ran on, lock gone: a second instance could start beside it.
    expect(await eventually(() => run.child.exitCode !== null, 20_000)).toBe(true)
    expect(run.child.exitCode).toBe(143) // unshare passes its child's exit status on
    expect(existsSync(lock)).toBe(false)
  })
})

describe.skipIf(nsReason !== null)("a container's holder, judged from the host", () => {
  it('held (foreign, nothing acts on it) while it runs; stale once its namespace is gone with it, and taken over (it was held for ever)', async () => {
    const lock = join(tmp.dir, 'app.pid')
    const run = startCommand(unshare!, ['--kill-child', '--pid', '--fork', '--mount-proc', process.execPath, join(fixtures, 'pid1.mjs'), lock])
    children.push(run)
    await run.waitFor('ready')
    const [app] = childrenOf(run.pid)
    const alive = readPidLock(lock)
    expect(alive).toMatchObject({ state: 'held', foreign: true, owner: { pid: 1 }, reason: expect.stringContaining(`PID 1 of its PID namespace`) })
    expect(alive.reason).toContain(`PID ${app} here) is running`)
    process.kill(app!, 'SIGKILL') // its namespace ends with its init
    await run.done
    expect(readPidLock(lock)).toMatchObject({ state: 'stale', foreign: false, reason: expect.stringContaining('has ended: no process is left in it') })
    using taken = acquirePidLockSync(lock)
    expect(taken.tookOverFrom).toMatchObject({ pid: 1 })
  })
})

describe.skipIf(nsReason !== null)("a container with a hostname of its own (docker's default), judged from the host", () => {
  it('is this machine (same boot id): held while it runs, stale once the container is gone (it was "another host" for ever)', async () => {
    const lock = join(tmp.dir, 'app.pid')
    const run = startCommand(unshare!, [
      '--kill-child',
      '--uts',
      '--pid',
      '--fork',
      '--mount-proc',
      '/bin/sh',
      '-c',
      'hostname ctr1 && exec "$@"',
      'sh',
      process.execPath,
      join(fixtures, 'pid1.mjs'),
      lock,
    ])
    children.push(run)
    await run.waitFor('ready')
    expect(readPidLock(lock)).toMatchObject({ state: 'held', foreign: true, owner: { hostname: 'ctr1' }, reason: expect.stringContaining('PID 1 of its PID namespace') })
    const [sh] = childrenOf(run.pid)
    process.kill(sh!, 'SIGKILL')
    await run.done
    expect(readPidLock(lock)).toMatchObject({ state: 'stale', reason: expect.stringContaining('has ended') })
  })
})

describe('another machine with the same hostname (a shared volume, a fixed --hostname)', () => {
  it('another boot id and another machine id: held, never "rebooted"; the same machine id: rebooted, stale', () => {
    const lock = join(tmp.dir, 'app.pid')
    const me = selfIdentity()
    const other = (machineId: string | null) =>
      `${process.pid}\n${JSON.stringify({ exitguard: 1, pid: process.pid, hostname: me.hostname, startTime: '1', bootId: 'another-boot', pidNamespace: me.pidNamespace, machineId, createdAt: new Date().toISOString(), command: 'x', data: null, token: 'elsewhere' })}\n`
    writeFileSync(lock, other('0123456789abcdef0123456789abcdef'))
    expect(readPidLock(lock)).toMatchObject({ state: 'held', foreign: true, reason: expect.stringContaining('another machine with the same hostname') })
    expect(() => acquirePidLockSync(lock)).toThrow(expect.objectContaining({ code: 'ELOCKED' }))
    if (me.machineId) {
      writeFileSync(lock, other(me.machineId))
      expect(readPidLock(lock)).toMatchObject({ state: 'stale', reason: expect.stringContaining('rebooted') })
    }
  })
})

describe.skipIf(nsReason !== null)('a hostname changed under a holder (same boot, same PID namespace)', () => {
  it('is judged as this machine: held while it runs, stale once it is SIGKILLed (it was "another host" for ever)', async () => {
    const lock = join(tmp.dir, 'app.pid')
    // A new UTS namespace with another hostname; the PID namespace and the boot are the host's.
    const run = startCommand(unshare!, ['--uts', '/bin/sh', '-c', 'hostname exitguard-elsewhere && exec "$@"', 'sh', process.execPath, join(fixtures, 'pid1.mjs'), lock])
    children.push(run)
    await run.waitFor('ready')
    const pid = Number(run.stdout().split('\n')[0])
    expect(readPidLock(lock)).toMatchObject({ state: 'held', foreign: false, owner: { pid, hostname: 'exitguard-elsewhere' }, reason: `PID ${pid} is running` })
    run.child.kill('SIGKILL')
    await run.done
    expect(readPidLock(lock)).toMatchObject({ state: 'stale', reason: `no process has PID ${pid}` })
    acquirePidLockSync(lock).release()
  })
})

describe.skipIf(nsReason !== null)('a holder in a time namespace (unshare --time, a CRIU restore)', () => {
  it('is judged by the same start time inside and outside: held while it runs, never "PID reused"', async () => {
    const lock = join(tmp.dir, 'app.pid')
    // /proc/<pid>/stat's start time is shifted by the reader's boottime offset: 1000 s here.
    const run = startCommand(unshare!, ['--kill-child', '--time', '--boottime', '1000', '--fork', process.execPath, join(fixtures, 'pid1.mjs'), lock])
    children.push(run)
    await run.waitFor('ready')
    const pid = Number(run.stdout().split('\n')[0])
    expect(readPidLock(lock)).toMatchObject({ state: 'held', reason: `PID ${pid} is running` })
    expect(() => acquirePidLockSync(lock)).toThrow(expect.objectContaining({ code: 'ELOCKED' }))
  })
})

describe('a clock set back', () => {
  it('an unreadable lock file dated an hour ahead is stale at once, not held until the clock catches up', () => {
    const lock = join(tmp.dir, 'app.pid')
    writeFileSync(lock, 'garbage\n')
    const hourAhead = new Date(Date.now() + 3_600_000)
    utimesSync(lock, hourAhead, hourAhead)
    expect(readPidLock(lock)).toMatchObject({ state: 'stale', reason: expect.stringContaining('in the future (the clock was set back') })
    using taken = acquirePidLockSync(lock)
    expect(taken.tookOverFrom).toBeNull()
    // Just written (or a moment ahead, as mtime rounding gives): still within the grace, held.
    writeFileSync(join(tmp.dir, 'fresh.pid'), 'garbage\n')
    expect(readPidLock(join(tmp.dir, 'fresh.pid')).state).toBe('held')
  })
})

describe('error codes as documented', () => {
  it('a Unix socket at the lock path: ENOTFILE (it was ENXIO)', async () => {
    const lock = join(tmp.dir, 'app.pid')
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(lock, resolve))
    try {
      expect(() => acquirePidLockSync(lock)).toThrow(expect.objectContaining({ code: 'ENOTFILE', path: lock, message: expect.stringContaining('is a socket') }))
      expect(() => readPidLock(lock)).toThrow(expect.objectContaining({ code: 'ENOTFILE' }))
    } finally {
      server.close()
    }
  })

  it.skipIf(process.getuid?.() !== 0)('a socket directory another user made: EUNSAFE (it was EACCES), for a holder run as uid 65534', async (ctx) => {
    const copy = nobodyCopy()
    if (copy.skip !== undefined) return ctx.skip(copy.skip)
    try {
      chmodSync(tmp.dir, 0o755)
      const theirs = join(tmp.dir, 'sockets') // root's, 0700: nobody can't even open it
      mkdirSync(theirs, { mode: 0o700 })
      const shared = join(tmp.dir, 'locks')
      mkdirSync(shared)
      chmodSync(shared, 0o1777)
      const script = `import('./dist/esm/index.js').then(({ acquirePidLockSync }) => { try { acquirePidLockSync(${JSON.stringify(join(shared, 'a.pid'))}, { onMessage: () => 1, messaging: { socketDir: ${JSON.stringify(theirs)} } }) } catch (err) { console.log(err.code + ' ' + err.message) } })`
      const r = spawnSync(process.execPath, ['-e', script], { ...NOBODY, cwd: copy.root, encoding: 'utf8' })
      expect(r.stdout).toMatch(/^EUNSAFE .*belongs to uid 0/)
    } finally {
      copy.cleanup()
    }
  })
})
