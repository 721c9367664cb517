// Temp files and dirs under Windows node, where there is neither /proc nor rm(1).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as eg from '../../dist/esm/index.js'
import { exited, node, scratch, script, startReady } from './helpers.mjs'

const dir = scratch()
const fill = (root) => {
  writeFileSync(join(root, 'a.txt'), 'a')
  mkdirSync(join(root, 'sub', 'deeper'), { recursive: true })
  writeFileSync(join(root, 'sub', 'b.txt'), 'b')
  writeFileSync(join(root, 'sub', 'deeper', 'c.txt'), 'c')
  writeFileSync(join(root, 'sub', 'ro.txt'), 'read-only')
  chmodSync(join(root, 'sub', 'ro.txt'), 0o444)
}

test('a temp file is removed on release', () => {
  const f = eg.tempFileSync({ dir })
  assert.equal(existsSync(f.path), true)
  f.remove()
  assert.equal(existsSync(f.path), false)
})

test('a non-empty temp dir is removed on remove(), read-only files and all', () => {
  const d = eg.tempDirSync({ dir })
  fill(d.path)
  d.remove()
  assert.equal(existsSync(d.path), false)
})

test('a non-empty temp dir and a temp file are removed at process exit', () => {
  const r = node([
    script(
      dir,
      'exit-temp.mjs',
      `
const d = eg.tempDirSync({ dir: ${JSON.stringify(dir)}, prefix: 'atexit-' })
fs.mkdirSync(d.path + '/x/y', { recursive: true }); fs.writeFileSync(d.path + '/x/y/z.txt', 'z')
const f = eg.tempFileSync({ dir: ${JSON.stringify(dir)}, prefix: 'atexit-' })
console.log(JSON.stringify([d.path, f.path]))
process.exit(0)`,
    ),
  ])
  assert.equal(r.status, 0, r.stderr)
  const [d, f] = JSON.parse(r.stdout)
  assert.equal(existsSync(d), false, r.stderr)
  assert.equal(existsSync(f), false)
})

test('what exitguard did not create is left alone: a dir put in its place', () => {
  const d = eg.tempDirSync({ dir })
  const path = d.path
  renameSync(path, path + '.moved')
  mkdirSync(path)
  writeFileSync(join(path, 'theirs.txt'), 'not ours')
  assert.throws(() => d.remove())
  assert.equal(existsSync(join(path, 'theirs.txt')), true)
  assert.equal(existsSync(join(path + '.moved')), true)
})

test("a killed owner's non-empty temp dir is reaped", async () => {
  const child = await startReady([
    script(
      dir,
      'reaped.mjs',
      `
const d = eg.tempDirSync({ dir: ${JSON.stringify(dir)}, prefix: 'orphan-' })
fs.mkdirSync(d.path + '/x'); fs.writeFileSync(d.path + '/x/y.txt', 'y')
fs.writeSync(1, d.path + '\\nready\\n'); setInterval(() => {}, 1000)`,
    ),
  ])
  const path = child.output().out.split(/\r?\n/)[0]
  assert.deepEqual(eg.reapOrphans({ dir, prefix: 'orphan-' }), [], 'alive: not reaped')
  process.kill(child.pid)
  await exited(child)
  assert.equal(existsSync(path), true)
  const reaped = eg.reapOrphans({ dir, prefix: 'orphan-' })
  assert.deepEqual(
    reaped.map((e) => [e.path, e.kind]),
    [[path, 'dir']],
  )
  assert.equal(existsSync(path), false)
})

// Windows symlinks and junctions are reparse points that lstat reports as links. Wine 8 makes
// neither (symlinkSync "succeeds" and leaves nothing, a junction is ENOTSUP), so under Wine this
// test is skipped; it runs on real Windows.
test('a junction or symlink inside is removed, never followed', (t) => {
  const outside = join(dir, 'outside')
  mkdirSync(outside, { recursive: true })
  writeFileSync(join(outside, 'keep.txt'), 'keep')
  const d = eg.tempDirSync({ dir })
  let made = 0
  for (const [name, type] of [
    ['junction', 'junction'],
    ['dirlink', 'dir'],
  ]) {
    try {
      symlinkSync(outside, join(d.path, name), type)
      if (lstatSync(join(d.path, name)).isSymbolicLink()) made++
    } catch {}
  }
  if (made === 0) return t.skip('this system makes no junction or symlink (Wine 8)')
  d.remove()
  assert.equal(existsSync(d.path), false)
  assert.deepEqual(readdirSync(outside), ['keep.txt'])
})
