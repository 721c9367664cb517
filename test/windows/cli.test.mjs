// The exitguard command under Windows node: run, status, reap; start and stop refuse clearly.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cli, cliPath, exited, scratch, script, startReady } from './helpers.mjs'

const dir = scratch()

test('run: the command runs while the lock is held, its exit code comes back, the lock goes', () => {
  const lock = join(dir, 'run.pid')
  const probe = script(dir, 'probe.mjs', `const s = eg.readPidLock(${JSON.stringify(lock)}); console.log(s.state + ' ' + (process.env.EXITGUARD_TMPDIR ? 'tmp' : 'notmp')); process.exit(7)`)
  const r = cli(['run', '--lock', lock, '--tmpdir', '--', process.execPath, probe])
  assert.equal(r.status, 7, r.stderr)
  assert.equal(r.stdout.trim(), 'held tmp')
  assert.equal(existsSync(lock), false)
})

test('run: a held lock gives 75 and names the holder', async () => {
  const lock = join(dir, 'held.pid')
  const child = await startReady([script(dir, 'hold.mjs', `eg.acquirePidLockSync(${JSON.stringify(lock)}); fs.writeSync(1, 'ready\\n'); setInterval(() => {}, 1000)`)])
  try {
    const r = cli(['run', '--lock', lock, '--', process.execPath, '-e', '0'])
    assert.equal(r.status, 75, r.stderr)
    assert.match(r.stderr, new RegExp(`PID ${child.pid}`))
  } finally {
    child.kill()
    await exited(child)
  }
})

test('status: free 0, held 1, stale 2 (holder killed)', async () => {
  const lock = join(dir, 'status.pid')
  assert.equal(cli(['status', lock]).status, 0)
  const child = await startReady([script(dir, 'hold-s.mjs', `eg.acquirePidLockSync(${JSON.stringify(lock)}); fs.writeSync(1, 'ready\\n'); setInterval(() => {}, 1000)`)])
  const held = cli(['status', lock, '--json'])
  assert.equal(held.status, 1, held.stderr)
  assert.equal(JSON.parse(held.stdout).owner.pid, child.pid)
  child.kill()
  await exited(child)
  const stale = cli(['status', lock])
  assert.equal(stale.status, 2, stale.stdout + stale.stderr)
  assert.match(stale.stdout, /^stale:/)
})

test("reap: a killed run's lock and temp dir go", async () => {
  const dir = scratch() // its own: reap looks at everything in it
  const lock = join(dir, 'reap-me.pid')
  const child = await startReady([
    script(
      dir,
      'leave.mjs',
      `
eg.acquirePidLockSync(${JSON.stringify(lock)})
const d = eg.tempDirSync({ dir: ${JSON.stringify(dir)}, prefix: 'left-' }); fs.writeFileSync(d.path + '/f', 'f')
fs.writeSync(1, d.path + '\\nready\\n'); setInterval(() => {}, 1000)`,
    ),
  ])
  const tmp = child.output().out.split(/\r?\n/)[0]
  child.kill()
  await exited(child)
  const r = cli(['reap', dir, '--json'])
  assert.equal(r.status, 0, r.stderr)
  const paths = JSON.parse(r.stdout)
    .entries.map((e) => e.path)
    .sort()
  assert.deepEqual(paths, [lock, tmp].sort())
  assert.equal(existsSync(lock) || existsSync(tmp), false)
})

test('run: killing the wrapper (TerminateProcess) ends its command too (the job object)', async () => {
  const lock = join(dir, 'job.pid')
  const pidFile = join(dir, 'job-command.pid')
  const command = script(dir, 'command.mjs', `fs.writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); fs.writeSync(1, 'ready\\n'); setInterval(() => {}, 1000)`)
  const wrapper = await startReady([cliPath, 'run', '--lock', lock, '--', process.execPath, command])
  const commandPid = Number(readFileSync(pidFile, 'utf8'))
  process.kill(wrapper.pid)
  await exited(wrapper)
  let alive = true
  for (let i = 0; i < 100 && alive; i++) {
    try {
      process.kill(commandPid, 0)
      await new Promise((r) => setTimeout(r, 50))
    } catch {
      alive = false
    }
  }
  assert.equal(alive, false, 'the command outlived its wrapper')
  assert.equal(cli(['status', lock]).status, 2)
})

for (const command of ['start', 'stop']) {
  test(`${command}: refused on Windows with a typed error`, () => {
    const r = cli([command, '--lock', join(dir, 'd.pid'), '--', process.execPath, '-e', '0'])
    assert.equal(r.status, 69, r.stdout + r.stderr)
    assert.match(r.stderr, /ENOTSUP.*Windows|Windows.*ENOTSUP/s)
  })
}
