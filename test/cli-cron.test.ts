// `exitguard run` for cron and job runners (issue 22): conflict codes, quiet skips, time limits,
// pile-up warnings, run-this-one, shared runs and slots; through the real built bin.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { makeTempDir, root, startNode, type ChildResult, type RunningChild } from './helpers/child.js'
import { endStarted, type Started } from './helpers/keepers.js'

const bin = join(root, 'dist/exitguard.cjs')
let tmp: ReturnType<typeof makeTempDir>
let lock: string
const children: RunningChild[] = []
const started: Started[] = []
beforeEach(() => {
  tmp = makeTempDir('exitguard-cron-')
  lock = join(tmp.dir, 'job.pid')
})
afterEach(async () => {
  await endStarted(started, children, 'SIGTERM')
  tmp.cleanup()
})

const exitguard = (args: string[], env?: NodeJS.ProcessEnv): Promise<ChildResult> => startNode(bin, args, { env }).done
/** A run that holds the lock until its test ends; prints "ready" once its command runs. */
async function holding(extra: string[] = [], command = 'echo ready; exec sleep 60'): Promise<RunningChild> {
  const c = startNode(bin, ['run', '--lock', lock, ...extra, '--', 'sh', '-c', command])
  children.push(c)
  await c.waitFor('ready')
  return c
}

describe('exitguard run: busy, as cron wants it', () => {
  it('-E N exits N instead of 75; -q prints nothing; --warn-after warns of a holder stuck longer, even with -q', async () => {
    await holding()
    const plain = await exitguard(['run', '--lock', lock, '--', 'true'])
    expect(plain).toMatchObject({ code: 75, stderr: expect.stringContaining(`The lock ${lock} is held by PID`) })
    expect(await exitguard(['run', '-E', '3', '-q', '--lock', lock, '--', 'true'])).toMatchObject({ code: 3, stdout: '', stderr: '' })
    expect(await exitguard(['run', '--conflict-exit-code', '0', '--quiet', '--lock', lock, '--', 'true'])).toMatchObject({ code: 0, stderr: '' })
    const warned = await exitguard(['run', '-q', '--warn-after', '0', '--lock', lock, '--', 'true'])
    expect(warned).toMatchObject({ code: 75, stderr: expect.stringMatching(/^exitguard: warning: PID \d+ .* has held .* longer than --warn-after 0 ms: runs are piling up/) })
    expect(warned.stderr.split('\n').filter(Boolean)).toHaveLength(1)
    expect((await exitguard(['run', '-q', '--warn-after', '3600000', '--lock', lock, '--', 'true'])).stderr).toBe('')
    expect((await exitguard(['run', '-E', '256', '--lock', lock, '--', 'true'])).code).toBe(64)
  })

  it('the command learns what it holds: EXITGUARD_LOCK', async () => {
    expect(await exitguard(['run', '--lock', lock, '--', 'sh', '-c', 'echo "$EXITGUARD_LOCK"'])).toMatchObject({ code: 0, stdout: `${lock}\n` })
  })
})

describe('exitguard run --timeout and --kill-after (as timeout(1))', () => {
  it('SIGTERM after --timeout: 124, and the lock is free; one that ignores it is SIGKILLed after --kill-after: 137', async () => {
    expect(await exitguard(['run', '--lock', lock, '--timeout', '100', '--', 'sleep', '60'])).toMatchObject({ code: 124 })
    expect(existsSync(lock)).toBe(false)
    const r = await exitguard(['run', '--lock', lock, '--timeout', '100', '--kill-after', '100', '--', 'sh', '-c', "trap '' TERM; exec sleep 60"])
    expect(r.code).toBe(137)
    expect(existsSync(lock)).toBe(false)
    // In time: the command's own code.
    expect((await exitguard(['run', '--lock', lock, '--timeout', '60000', '--', 'sh', '-c', 'exit 7'])).code).toBe(7)
    expect((await exitguard(['run', '--lock', lock, '--kill-after', '10', '--', 'true'])).code).toBe(64)
  })
})

describe('exitguard run --replace (run-this-one)', () => {
  it('stops the verified holder, then runs; the old command is gone before the new one starts', async () => {
    const marker = join(tmp.dir, 'old.pid')
    const old = await holding([], `echo $$ > ${marker}; echo ready; exec sleep 60`)
    const oldPid = Number(readFileSync(marker, 'utf8'))
    const r = await exitguard(['run', '--replace', '--lock', lock, '--', 'sh', '-c', `kill -0 ${oldPid} 2>/dev/null && echo OVERLAP || echo alone`])
    expect(r).toMatchObject({ code: 0, stdout: 'alone\n', stderr: expect.stringContaining('--replace: PID') })
    expect(await old.done).toMatchObject({ signal: 'SIGTERM' })
  })
})

describe('exitguard run --shared and --slots', () => {
  it('shared runs run side by side; an exclusive run is refused meanwhile; status lists every holder', async () => {
    await holding(['--shared'])
    await holding(['--shared'])
    const busy = await exitguard(['run', '--lock', lock, '--', 'true'])
    expect(busy).toMatchObject({ code: 75, stderr: expect.stringContaining('is held shared by PID') })
    const status = await exitguard(['status', lock])
    expect(status.code).toBe(1)
    expect(status.stdout.match(/^shared: held by PID/gm)).toHaveLength(2)
    const json = JSON.parse((await exitguard(['status', lock, '--json'])).stdout) as { holders: { kind: string }[] }
    expect(json.holders.map((h) => h.kind)).toEqual(['shared', 'shared'])
    expect(await exitguard(['run', '--shared', '--lock', lock, '--', 'true'])).toMatchObject({ code: 0 })
    // --replace has no one holder to stop here, and says so.
    expect(await exitguard(['run', '--replace', '--lock', lock, '--', 'true'])).toMatchObject({ code: 75, stderr: expect.stringContaining('--replace stops only an exclusive holder') })
  })

  it('--slots N: N runs at once, each told its slot; the next is refused naming them', async () => {
    await holding(['--slots', '2'], 'echo ready; exec sleep 60')
    const second = await exitguard(['run', '--slots', '2', '--lock', lock, '--', 'sh', '-c', 'echo "slot $EXITGUARD_SLOT"'])
    expect(second).toMatchObject({ code: 0, stdout: 'slot 2\n' })
    await holding(['--slots', '2'], 'echo ready; exec sleep 60')
    const third = await exitguard(['run', '--slots', '2', '--lock', lock, '--', 'true'])
    expect(third).toMatchObject({ code: 75, stderr: expect.stringContaining(`All 2 slots of the lock ${lock} are held: slot 1: PID`) })
    expect((await exitguard(['status', lock])).stdout).toMatch(/^slot 1: held by .*\nslot 2: held by /m)
    expect((await exitguard(['run', '--slots', '2', '--shared', '--lock', lock, '--', 'true'])).code).toBe(64)
  })
})
