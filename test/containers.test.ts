// Containers, hostnames and clocks (issue 23): a container's PID 1, a hostname changed under a
// running holder, a lock file dated in the future. Real namespaces (unshare), real processes.
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { acquirePidLockSync, readPidLock } from '../src/index.js'
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
    const run = startCommand(unshare!, ['--pid', '--fork', '--mount-proc', process.execPath, join(fixtures, 'pid1.mjs'), lock])
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
