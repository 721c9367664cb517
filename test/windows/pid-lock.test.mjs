// PID locks under Windows node: acquire, ELOCKED, release, takeover of a killed holder, and
// proof of death by the holder's named pipe (not by its PID, which Windows reuses).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as eg from '../../dist/esm/index.js'
import { exited, node, scratch, script, startReady } from './helpers.mjs'

const dir = scratch()
const holder = (lock) => `const lock = eg.acquirePidLockSync(${JSON.stringify(lock)}); fs.writeSync(1, 'ready\\n'); setInterval(() => {}, 1000)`
const taker = (lock) =>
  `try { const l = eg.acquirePidLockSync(${JSON.stringify(lock)}); console.log(JSON.stringify({ won: true, from: l.tookOverFrom?.pid ?? null })) } catch (e) { console.log(JSON.stringify({ won: false, code: e.code })) }`
const record = (lock) => JSON.parse(readFileSync(lock, 'utf8').split('\n')[1])

test('acquire writes a record with the PID and the pipe; release removes it', () => {
  const lock = join(dir, 'a.pid')
  const l = eg.acquirePidLockSync(lock)
  const r = record(lock)
  assert.equal(r.pid, process.pid)
  assert.equal(r.pipe, `\\\\.\\pipe\\exitguard-${r.token}`)
  assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(process.pid))
  assert.equal(eg.readPidLock(lock).state, 'held')
  l.release()
  assert.equal(existsSync(lock), false)
  assert.equal(eg.readPidLock(lock).state, 'free')
})

test('a second process gets ELOCKED while the first holds it, the lock after release', async () => {
  const lock = join(dir, 'b.pid')
  const child = await startReady([script(dir, 'hold-b.mjs', holder(lock))])
  try {
    const r = node([script(dir, 'take-b.mjs', taker(lock))])
    assert.deepEqual(JSON.parse(r.stdout), { won: false, code: 'ELOCKED' }, r.stderr)
    assert.equal(eg.readPidLock(lock).state, 'held')
  } finally {
    child.kill()
    await exited(child)
  }
})

test('a killed holder (TerminateProcess) is proven dead and its lock taken over', async () => {
  const lock = join(dir, 'c.pid')
  const child = await startReady([script(dir, 'hold-c.mjs', holder(lock))])
  process.kill(child.pid, 'SIGTERM') // TerminateProcess: no handler runs, the file stays
  await exited(child)
  assert.equal(existsSync(lock), true)
  const status = eg.readPidLock(lock)
  assert.equal(status.state, 'stale')
  const r = node([script(dir, 'take-c.mjs', taker(lock))])
  assert.deepEqual(JSON.parse(r.stdout), { won: true, from: child.pid }, r.stderr)
})

test('PID reuse: a record whose PID is alive but whose pipe is gone is stale', async () => {
  // A live process that never held the lock stands for the new owner of a reused PID.
  const lock = join(dir, 'd.pid')
  const child = await startReady([script(dir, 'sleeper.mjs', `fs.writeSync(1, 'ready\\n'); setInterval(() => {}, 1000)`)])
  try {
    const l = eg.acquirePidLockSync(lock)
    const r = record(lock)
    l.release()
    // The same record, as a dead holder whose PID went to `child` would have left it.
    const text = `${child.pid}\n${JSON.stringify({ exitguard: 1, ...r, pid: child.pid })}\n`
    writeFileSync(lock, text)
    const status = eg.readPidLock(lock)
    assert.equal(status.state, 'stale', status.reason)
    assert.match(status.reason, /pipe/)
    const taken = eg.acquirePidLockSync(lock)
    assert.equal(taken.tookOverFrom.pid, child.pid)
    taken.release()
  } finally {
    child.kill()
    await exited(child)
  }
})

test('a live holder is never judged dead, also while it is being checked a hundred times', async () => {
  const lock = join(dir, 'e.pid')
  const child = await startReady([script(dir, 'hold-e.mjs', holder(lock))])
  try {
    for (let i = 0; i < 100; i++) assert.equal(eg.readPidLock(lock).state, 'held')
    assert.throws(() => eg.acquirePidLockSync(lock), { code: 'ELOCKED' })
  } finally {
    child.kill()
    await exited(child)
  }
})

test('six racers for one stale lock: exactly one wins', async () => {
  const lock = join(dir, 'f.pid')
  const child = await startReady([script(dir, 'hold-f.mjs', holder(lock))])
  process.kill(child.pid)
  await exited(child)
  // All wait for one moment, so they race; the winner holds on until every racer has reported.
  const racer = script(dir, 'racer.mjs', `const go = Number(process.argv[2]); while (Date.now() < go); ${taker(lock)}; setInterval(() => {}, 1000)`)
  const { spawn } = await import('node:child_process')
  const go = String(Date.now() + 4000)
  const children = []
  const runs = Array.from(
    { length: 6 },
    () =>
      new Promise((resolve) => {
        const c = spawn(process.execPath, [racer, go], { stdio: ['ignore', 'pipe', 'inherit'] })
        children.push(c)
        let out = ''
        c.stdout.on('data', (d) => {
          out += d
          if (out.includes('\n')) resolve(JSON.parse(out))
        })
      }),
  )
  const results = await Promise.all(runs)
  for (const c of children) c.kill()
  await Promise.all(children.map(exited))
  assert.equal(results.filter((r) => r.won).length, 1, JSON.stringify(results))
  assert.ok(
    results.every((r) => r.won || r.code === 'ELOCKED'),
    JSON.stringify(results),
  )
})

// Wine's rename, like NTFS's without POSIX semantics, refuses to replace a file that is open
// (EPERM). A takeover that meets a reader keeping the dead lock open fails with a typed error
// and leaves no claim behind; once the reader closes, it succeeds. (Where rename replaces an
// open file, the first try simply wins.)
test('a takeover blocked by a reader holding the dead lock open: typed error, no claim left, then it wins', async (t) => {
  const { closeSync, openSync, readdirSync } = await import('node:fs')
  const lock = join(dir, 'g.pid')
  const child = await startReady([script(dir, 'hold-g.mjs', holder(lock))])
  process.kill(child.pid)
  await exited(child)
  const reader = openSync(lock, 'r')
  let blocked = false
  try {
    eg.acquirePidLockSync(lock).release()
  } catch (err) {
    blocked = true
    assert.equal(err.code, 'EPERM', err.message)
    assert.equal(err.path, lock)
  } finally {
    closeSync(reader)
  }
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.startsWith('g.pid.break.') || (n.startsWith('.g.pid.') && n.endsWith('.new'))),
    [],
  )
  t.diagnostic(blocked ? 'rename over the open file was refused (EPERM), as on NTFS without POSIX rename' : 'rename replaced the open file')
  if (blocked) {
    const l = eg.acquirePidLockSync(lock)
    assert.equal(l.tookOverFrom.pid, child.pid)
    l.release()
  }
})
