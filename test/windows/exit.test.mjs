// Exit handlers under Windows node: newest first on each exit path Node sees there.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { exited, node, scratch, script, startReady } from './helpers.mjs'

const dir = scratch()
const handlers = `
for (const name of ['first', 'second', 'third']) eg.onExit(() => fs.writeSync(1, name + '\\n'))
`

test('natural end: handlers run newest first', () => {
  const r = node([script(dir, 'natural.mjs', handlers)])
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(r.stdout.trim().split(/\r?\n/), ['third', 'second', 'first'])
})

test('process.exit(3): handlers run newest first, the code is kept', () => {
  const r = node([script(dir, 'exit.mjs', handlers + 'process.exit(3)')])
  assert.equal(r.status, 3, r.stderr)
  assert.deepEqual(r.stdout.trim().split(/\r?\n/), ['third', 'second', 'first'])
})

test('an uncaught throw: handlers run newest first, exit code 1', () => {
  const r = node([script(dir, 'throw.mjs', handlers + 'throw new Error("boom")')])
  assert.equal(r.status, 1)
  assert.match(r.stderr, /boom/)
  assert.deepEqual(r.stdout.trim().split(/\r?\n/), ['third', 'second', 'first'])
})

test('an async handler is awaited on natural end', () => {
  const r = node([script(dir, 'async.mjs', `eg.onExit(async () => { await new Promise((r) => setTimeout(r, 50)); fs.writeSync(1, 'async done\\n') })`)])
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'async done')
})

// Measured, not wished: on Windows process.kill(pid, 'SIGTERM') (and SIGINT, SIGKILL) is
// TerminateProcess. The process runs nothing; the exit code is 1 (docs/platforms.md).
for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`process.kill(pid, '${signal}') terminates at once: no handler runs`, async () => {
    const child = await startReady([
      script(dir, `killed-${signal}.mjs`, handlers + `process.on('${signal}', () => fs.writeSync(1, 'listener\\n')); fs.writeSync(1, 'ready\\n'); setInterval(() => {}, 1000)`),
    ])
    process.kill(child.pid, signal)
    const [code, sig] = await exited(child)
    assert.deepEqual([code, sig], [1, null])
    assert.equal(child.output().out.trim(), 'ready')
  })
}
