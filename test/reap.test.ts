import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { reapOrphans, tempDirSync, tempFileSync } from '../src/index.js'
import { makeTempName, parseTempName } from '../src/temp/temp-name.js'
import { deadPid, fixtures, makeTempDir, root, runNode, startNode, type RunningChild } from './helpers/child.js'

let tmp: ReturnType<typeof makeTempDir>
let dir: string
const children: RunningChild[] = []
beforeEach(() => {
  tmp = makeTempDir()
  dir = tmp.dir
})
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.child.kill('SIGKILL')
    await c.done
  }
  tmp.cleanup()
})

/** A name as exitguard would make it, with some owner fields replaced. */
function craftName(fields: { host?: string; pid?: number; start?: string; boot?: string } = {}, prefix = 'tmp-'): string {
  const real = makeTempName(prefix, '')
  const owner = parseTempName(real, prefix)!
  const random = real.slice(-16)
  return `${prefix}exitguard-${fields.host ?? owner.hostTag}-${fields.pid ?? owner.pid}-${fields.start ?? owner.startTag}-${fields.boot ?? owner.bootTag}-${random}`
}

const hold = join(fixtures, 'temp-hold.mjs')

describe('reapOrphans after SIGKILL', () => {
  it("removes a killed run's files and dirs and leaves a live process's alone", async () => {
    const killed = startNode(hold, [dir, 'job-', '3'])
    const live = startNode(hold, [dir, 'job-', '2'])
    children.push(killed, live)
    await Promise.all([killed.waitFor('ready'), live.waitFor('ready')])
    killed.child.kill('SIGKILL')
    expect((await killed.done).signal).toBe('SIGKILL')

    const owned = (pid: number) => readdirSync(dir).filter((n) => parseTempName(n)?.pid === pid)
    expect(owned(killed.pid)).toHaveLength(6) // SIGKILL: nothing could clean up
    expect(owned(live.pid)).toHaveLength(4)

    const leftovers = owned(killed.pid).sort()
    const reaped = reapOrphans({ dir })
    expect(reaped.map((r) => basename(r.path)).sort()).toEqual(leftovers)
    expect(owned(killed.pid)).toEqual([])
    expect(reaped.filter((r) => r.kind === 'dir')).toHaveLength(3)
    for (const r of reaped) expect(r.reason).toBe(`no process has PID ${killed.pid}`)
    expect(owned(live.pid)).toHaveLength(4)

    // The live one still cleans up after itself.
    live.child.kill('SIGTERM')
    expect((await live.done).signal).toBe('SIGTERM')
    expect(readdirSync(dir)).toEqual([])
  })

  it('dryRun reports the same entries as a real run and removes nothing', async () => {
    const killed = startNode(hold, [dir, 'job-', '2'])
    children.push(killed)
    await killed.waitFor('ready')
    killed.child.kill('SIGKILL')
    await killed.done
    const before = readdirSync(dir).sort()
    expect(before).toHaveLength(4)

    const dry = reapOrphans({ dir, dryRun: true })
    expect(readdirSync(dir).sort()).toEqual(before)
    expect(dry.map((r) => r.kind).sort()).toEqual(['dir', 'dir', 'file', 'file'])
    const real = reapOrphans({ dir })
    expect(real).toEqual(dry)
    expect(readdirSync(dir)).toEqual([])
    expect(() => reapOrphans({ dir, dryRun: 'yes' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })

  it('the reap option reaps on first use, for that prefix only', async () => {
    const killed = startNode(hold, [dir, 'mine-', '2'])
    const other = startNode(hold, [dir, 'other-', '1'])
    children.push(killed, other)
    await Promise.all([killed.waitFor('ready'), other.waitFor('ready')])
    killed.child.kill('SIGKILL')
    other.child.kill('SIGKILL')
    await Promise.all([killed.done, other.done])
    const d = tempDirSync({ dir, prefix: 'mine-', reap: true })
    const left = readdirSync(dir)
    expect(left.filter((n) => n.startsWith('mine-'))).toEqual([basename(d.path)])
    expect(left.filter((n) => n.startsWith('other-'))).toHaveLength(2)
    d.remove()
  })
})

describe('reapOrphans and PID lock files', () => {
  const lockChild = join(fixtures, 'pid-lock.mjs')

  it("removes a SIGKILLed holder's lock and a dead taker's claim; leaves a live lock, bare PID files and others' files", async () => {
    const killed = startNode(lockChild, ['hold', join(dir, 'killed.pid')])
    const live = startNode(lockChild, ['hold', join(dir, 'live.pid')])
    children.push(killed, live)
    await Promise.all([killed.waitFor('ready'), live.waitFor('ready')])
    killed.child.kill('SIGKILL')
    await killed.done
    const dead = await deadPid()
    // What a taker killed mid-takeover leaves: a claim holding its own (dead) record.
    const record = readFileSync(join(dir, 'killed.pid'), 'utf8')
      .replace(String(killed.pid), String(dead))
      .replaceAll(`"pid":${killed.pid}`, `"pid":${dead}`)
      .replace(/"token":"\w+"/, '"token":"deadtaker1"')
    writeFileSync(join(dir, 'killed.pid.break.tsomething'), record)
    // What a waiter killed while waiting leaves: its private record file.
    writeFileSync(join(dir, '.killed.pid.deadtaker1.new'), record)
    writeFileSync(join(dir, 'bare.pid'), `${dead}\n`) // not provably exitguard's: left alone
    writeFileSync(join(dir, 'notes.txt'), 'not a lock\n')

    const reaped = reapOrphans({ dir })
    expect(reaped.map((r) => [basename(r.path), r.kind]).sort()).toEqual([
      ['.killed.pid.deadtaker1.new', 'pid-lock'],
      ['killed.pid', 'pid-lock'],
      ['killed.pid.break.tsomething', 'pid-lock'],
    ])
    expect(reaped.find((r) => basename(r.path) === 'killed.pid')!.reason).toBe(`no process has PID ${killed.pid}`)
    expect(readdirSync(dir).sort()).toEqual(['bare.pid', 'live.pid', 'notes.txt'])
    live.child.kill('SIGTERM')
    await live.done
    expect(readdirSync(dir).sort()).toEqual(['bare.pid', 'notes.txt'])
  })
})

describe('reapOrphans and pidOnly waiters (issue 9: 16)', () => {
  const lockChild = join(fixtures, 'pid-lock.mjs')

  it("removes a SIGKILLed pidOnly waiter's private file, and leaves a live waiter's and the bare PID lock", async () => {
    const lock = join(dir, 'app.pid')
    const holder = startNode(lockChild, ['hold', lock, '{"pidOnly":true}'])
    children.push(holder)
    await holder.waitFor('ready')
    const waiters = [0, 1].map(() => startNode(lockChild, ['try', lock, '{"pidOnly":true,"wait":60000}']))
    children.push(...waiters)
    // A waiter's private record: `.app.pid.<token>.new`, holding its bare PID.
    const privateOf = (pid: number) => readdirSync(dir).find((n) => n.endsWith('.new') && readFileSync(join(dir, n), 'utf8') === `${pid}\n`)
    for (let i = 0; i < 2000 && !waiters.every((w) => privateOf(w.pid)); i++) await new Promise((r) => setTimeout(r, 5))
    const [killed, live] = waiters as [RunningChild, RunningChild]
    const leftover = privateOf(killed.pid)!
    expect(leftover).toMatch(/^\.app\.pid\.[0-9a-f]{32}\.new$/)
    killed.child.kill('SIGKILL')
    await killed.done
    expect(reapOrphans({ dir })).toEqual([{ path: join(dir, leftover), kind: 'pid-lock', reason: `no process has PID ${killed.pid}` }])
    expect(readdirSync(dir).sort()).toEqual([privateOf(live.pid), 'app.pid'].sort())
  })
})

describe('reapOrphans and what the caller kept', () => {
  it('never removes a keep() or keep: true entry of a process that has ended', async () => {
    const script = join(dir, 'keeper.mjs')
    writeFileSync(
      script,
      `import { tempFileSync, tempDirSync } from ${JSON.stringify(join(root, 'dist/esm/index.js'))}
      const dir = process.argv[2]
      tempFileSync({ dir }).keep()
      tempDirSync({ dir, keep: true })
      tempFileSync({ dir }) // not kept: removed at exit`,
    )
    const r = await runNode(
      script,
      [join(dir, 'out')].map((d) => {
        mkdirSync(d)
        return d
      }),
    )
    expect(r.code).toBe(0)
    expect(readdirSync(join(dir, 'out'))).toHaveLength(2)
    expect(reapOrphans({ dir: join(dir, 'out') })).toEqual([])
    expect(readdirSync(join(dir, 'out'))).toHaveLength(2)
  })
})

describe('reapOrphans never breaks a claim that is still in use', () => {
  it("leaves a dead taker's claim on the record that is still at the lock: the next taker needs it", async () => {
    const dead = await deadPid()
    const deadTaker = await deadPid()
    const rec = (pid: number, token: string) =>
      `${pid}\n${JSON.stringify({ exitguard: 1, pid, hostname: hostname(), startTime: null, bootId: null, createdAt: new Date().toISOString(), command: 'x', data: null, token })}\n`
    writeFileSync(join(dir, 'app.pid'), rec(dead, 'holder1'))
    writeFileSync(join(dir, 'app.pid.break.tholder1'), rec(deadTaker, 'taker1'))
    const reaped = reapOrphans({ dir })
    // The lock itself is reaped through the takeover protocol, which uses the claim up.
    expect(reaped.map((r) => basename(r.path))).toEqual(['app.pid'])
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('reapOrphans removes claims only through the takeover protocol (issue 9, suspicion 1)', () => {
  it("leaves a dead claim alone while a live taker is breaking it, instead of deleting the taker's file mid-way", async () => {
    const rec = (pid: number, token: string, startTime: string | null = null) =>
      `${pid}\n${JSON.stringify({ exitguard: 1, pid, hostname: hostname(), startTime, bootId: null, createdAt: new Date().toISOString(), command: 'x', data: null, token })}\n`
    const ownStart = readFileSync('/proc/self/stat', 'latin1').split(') ')[1]!.split(' ')[19]!
    // A dead holder X; a dead taker B's claim on X; a dead taker C's claim on B; and a live taker
    // (this process) that has won the claim on C and is about to rename it over C's claim.
    const files = {
      'app.pid': rec(await deadPid(), 'X'),
      'app.pid.break.tX': rec(await deadPid(), 'B'),
      'app.pid.break.tB': rec(await deadPid(), 'C'),
      'app.pid.break.tC': rec(process.pid, 'T', ownStart),
    }
    for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body)
    expect(reapOrphans({ dir })).toEqual([])
    for (const [name, body] of Object.entries(files)) expect(readFileSync(join(dir, name), 'utf8'), name).toBe(body)
  })
})

describe('proof of death', () => {
  it('a reused PID (our own PID, another start time) is dead', () => {
    const name = craftName({ start: 'zzzz' })
    writeFileSync(join(dir, name), '')
    expect(reapOrphans({ dir })).toEqual([{ path: join(dir, name), kind: 'file', reason: `PID ${process.pid} now belongs to another process (PID reused)` }])
  })

  it('a reboot (our own PID and start time, another boot id) is dead', () => {
    const name = craftName({ boot: '00000000' })
    mkdirSync(join(dir, name))
    expect(reapOrphans({ dir })).toEqual([{ path: join(dir, name), kind: 'dir', reason: expect.stringContaining('rebooted') }])
  })

  it("our own live temp files are not reaped, nor a live other process's", async () => {
    const mine = tempFileSync({ dir })
    writeFileSync(join(dir, craftName({ pid: 1, start: 'x' })), '') // PID 1 is alive, start unknown
    expect(reapOrphans({ dir })).toEqual([])
    expect(readdirSync(dir)).toHaveLength(2)
    mine.remove()
  })

  it('another host is never judged here, even with a dead PID', async () => {
    const pid = await deadPid()
    const foreign = craftName({ host: 'deadbeef', pid })
    writeFileSync(join(dir, foreign), '')
    writeFileSync(join(dir, craftName({ pid })), '')
    expect(reapOrphans({ dir })).toHaveLength(1)
    expect(readdirSync(dir)).toEqual([foreign])
  })
})

describe('never removes what is not ours (threats: lookalike names, planted symlinks, other users)', () => {
  it('names that do not parse strictly are kept', async () => {
    const pid = await deadPid()
    const good = craftName({ pid })
    const lookalikes = [
      good.slice(0, -1), // random part too short
      good.replace('exitguard-', 'exitguarD-'),
      good.replace(`-${pid}-`, `-0${pid}-`),
      `tmp-${pid}-abcdefghijkl`, // tmp's own names
      'exitguard-test-123',
      'plain.txt',
    ]
    for (const n of lookalikes) writeFileSync(join(dir, n), '')
    expect(reapOrphans({ dir })).toEqual([])
    expect(readdirSync(dir).sort()).toEqual(lookalikes.sort())
  })

  it('a symlink named like a dead owner is kept, and so is its target', async () => {
    const pid = await deadPid()
    mkdirSync(join(dir, 'target'))
    writeFileSync(join(dir, 'target', 'precious'), 'keep me')
    symlinkSync(join(dir, 'target'), join(dir, craftName({ pid })))
    expect(reapOrphans({ dir })).toEqual([])
    expect(readFileSync(join(dir, 'target', 'precious'), 'utf8')).toBe('keep me')
    expect(readdirSync(dir)).toHaveLength(2)
  })

  it("a dead owner's dir is removed without following a symlink inside it", async () => {
    const pid = await deadPid()
    writeFileSync(join(dir, 'outside'), 'keep me')
    const orphan = join(dir, craftName({ pid }))
    mkdirSync(orphan)
    symlinkSync(join(dir, 'outside'), join(orphan, 'link'))
    symlinkSync(dir, join(orphan, 'link-to-parent'))
    expect(reapOrphans({ dir })).toHaveLength(1)
    expect(readdirSync(dir)).toEqual(['outside'])
    expect(readFileSync(join(dir, 'outside'), 'utf8')).toBe('keep me')
  })

  it.runIf(process.getuid?.() === 0)("another user's leftovers are kept, even as root", async () => {
    const pid = await deadPid()
    const name = craftName({ pid })
    writeFileSync(join(dir, name), '')
    chownSync(join(dir, name), 65534, 65534)
    expect(reapOrphans({ dir })).toEqual([])
    expect(existsSync(join(dir, name))).toBe(true)
  })

  it("a live entry whose name holds a dead process's name (as a prefix or postfix) is never reaped (issue 9, item 12)", async () => {
    const dead = craftName({ pid: await deadPid() })
    const live = makeTempName('', '') // this process: alive
    // What older versions let an app create: prefix = a dead run's name + '.', and the same as a postfix.
    const names = [`${dead}.${live}`, `tmp-${dead}.${live}`, `${live}.${dead}`]
    for (const n of names) writeFileSync(join(dir, n), 'live')
    expect(reapOrphans({ dir })).toEqual([])
    expect(reapOrphans({ dir, prefix: 'tmp-' })).toEqual([])
    expect(readdirSync(dir).sort()).toEqual(names.sort())
    // And no such name can be made any more, kept or not (a kept name with a dead run's name as
    // its prefix would look exactly like that run's leftover, so this refusal is what protects it).
    for (const options of [{ prefix: `${dead}.` }, { postfix: `.${dead}` }, { prefix: 'exitguard-', keep: true }]) {
      expect(() => tempFileSync({ dir, ...options })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('owner marker') }))
    }
  })

  it('prefix filters, and is checked like the creation option', async () => {
    const pid = await deadPid()
    writeFileSync(join(dir, craftName({ pid }, 'a-')), '')
    writeFileSync(join(dir, craftName({ pid }, 'b-')), '')
    expect(reapOrphans({ dir, prefix: 'a-' }).map((r) => basename(r.path).slice(0, 2))).toEqual(['a-'])
    expect(readdirSync(dir).map((n) => n.slice(0, 2))).toEqual(['b-'])
    expect(() => reapOrphans({ dir, prefix: '../' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
  })
})
