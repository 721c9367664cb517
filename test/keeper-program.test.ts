// The keeper program's pieces, each run on its own with the real sh and awk: the line parser,
// the awk releases and the sh waits, on real files and real processes. keeper.test.ts runs the
// whole keeper end to end.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { AWK_MAIN, AWK_PARSE, AWK_RELEASE, AWK_STEPS, AWK_TEXT, KEEPER_AWK } from '../src/keeper/keeper-awk.js'
import { commandLine, FIELD_TYPES, formatLine, LINES, lockLine, tempLine, type LineKind } from '../src/keeper/keeper-lines.js'
import { KEEPER_WAIT, SH_ALIVE, SH_GONE, SH_GROUPLIVE, SH_NOW, SH_STOP } from '../src/keeper/keeper-wait.js'
import { makeTempDir, root } from './helpers/child.js'
import { eventually, running, startTimeOf } from './helpers/keepers.js'

const linux = process.platform === 'linux'
vi.setConfig({ testTimeout: 60_000 })

let tmp: ReturnType<typeof makeTempDir>
let dir: string
const started: ChildProcess[] = []
beforeEach(() => {
  tmp = makeTempDir('exitguard-kprog-')
  dir = tmp.dir
})
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  tmp.cleanup()
})

/** Runs an awk program made of `pieces` as the keeper runs its own (LC_ALL=C, sf, the waits in the environment). */
function awk(pieces: string[], input = '', vars: Record<string, string> = {}): { stdout: string; status: number | null } {
  const args = Object.entries({ task: '', opid: '0', ostart: '0', sf: '-c', ...vars }).flatMap(([k, v]) => ['-v', `${k}=${v}`])
  const r = spawnSync('awk', [...args, pieces.join('\n')], { input, encoding: 'latin1', env: { ...process.env, LC_ALL: 'C', EXITGUARD_KEEPER_WAIT: KEEPER_WAIT }, timeout: 30_000 })
  if (r.stderr) throw new Error(`awk: ${r.stderr}`)
  return { stdout: r.stdout, status: r.status }
}

/** Runs `call` in a sh that has `functions` defined, as the keeper's awk runs its waits. */
function sh(functions: string[], call: string, args: string[] = []): { stdout: string; status: number | null } {
  const r = spawnSync('/bin/sh', ['-c', `set -f\n${functions.join('\n')}\n${call}`, 'sh', ...args], { encoding: 'latin1', timeout: 30_000 })
  return { stdout: r.stdout, status: r.status }
}

/** What parse() makes of each input line: its kind, then each of the kind's fields by name, one per line. */
function parsed(lines: string[]): string[][] {
  const driver = `{ k = parse($0, e); printf "%s", k; n = split(names[k], w, " "); for (i = 1; i <= n; i++) printf "\\t%s", e[w[i]]; print "" }`
  const names = Object.entries(LINES).map(([kind, fields]) => `names["${kind}"] = "${fields.map(([name]) => name).join(' ')}"`)
  const { stdout } = awk([`BEGIN { ${names.join('; ')} }`, driver, AWK_TEXT, AWK_PARSE], lines.map((l) => `${l}\n`).join(''))
  return stdout
    .split('\n')
    .slice(0, -1)
    .map((line) => line.split('\t'))
}

function quoted(s: string): string {
  return `'${s.replace(/'/g, `'"'"'`)}'`
}

describe('the line format, defined once (keeper-lines.ts LINES)', () => {
  it('each writer’s line reads back in awk as the very fields it was given, paths with spaces and quotes whole', () => {
    const path = `/tmp/a dir/it's  two  spaces.txt`
    const lines = [
      tempLine(2049n, 1311n, 1796146551_329861219n, path)!,
      tempLine(2049n, 1311n, 0n, '/tmp/x')!,
      lockLine(64768, 42, 'ab-12_CD', path)!,
      commandLine(4242, 5000, '81234')!,
      commandLine(4242, 0.4, 'Tue Dec  8 02:14:28 2026', true)!, // a macOS start time holds spaces
    ]
    expect(parsed(lines.map((line, i) => `+${i + 1} ${line}`))).toEqual([
      ['T', '2049', '1311', process.platform === 'linux' ? '1796146551.329861219' : '1796146551', path],
      ['T', '2049', '1311', '0', '/tmp/x'],
      ['L', '64768', '42', 'ab-12_CD', path],
      ['C', '4242', '5000', '81234'],
      ['G', '4242', '0', 'Tue Dec  8 02:14:28 2026'],
    ])
  })

  it('every kind, every field: formatLine’s order is parse’s order (a line made from the spec reads back field by field)', () => {
    const sample = { uint: '17', btime: '12.5', token: 'tok', text: 'the rest, with spaces' }
    for (const [kind, fields] of Object.entries(LINES) as [LineKind, (typeof LINES)[LineKind]][]) {
      const values = Object.fromEntries(fields.map(([name, type], i) => [name, type === 'uint' ? String(100 + i) : sample[type]]))
      const line = formatLine(kind, values as never)!
      expect(line.split(' ').slice(0, fields.length), kind).toEqual([kind, ...fields.slice(0, -1).map(([name]) => values[name])])
      expect(parsed([`+1 ${line}`])[0], kind).toEqual([kind, ...fields.map(([name]) => values[name])])
    }
  })

  it('a malformed line is refused by the parser, and a writer refuses to make one', () => {
    const refused = [
      'T 1 2 0 /no/id',
      '+x T 1 2 0 /bad/id',
      '+1 X 1 2 0 /unknown/kind',
      '+1 T 1 2 0', // no path
      '+1 T 1 2 0 ', // an empty path
      '+1 T a 2 0 /dev/not/a/number',
      '+1 T 1 2 1.2.3 /bad/btime',
      '+1 T 1 2 - /bad/btime',
      `+1 L 1 2 to"ken /bad/token`,
      '+1 L 1 2',
      '+1 C 42 5000',
      '+1 C -42 5000 1',
      '+1 G 42 1.5 1',
      '+1',
      '',
    ]
    for (const line of refused) expect(parsed([line])[0], JSON.stringify(line)).toEqual([''])
    expect(tempLine(1n, 2n, 0n, '/a\nb')).toBeNull()
    expect(tempLine(1n, 2n, 0n, '')).toBeNull()
    expect(lockLine(1, 2, 'to ken', '/a')).toBeNull()
    expect(lockLine(1, 2, 'tok', '/a\rb')).toBeNull()
    expect(commandLine(0, 5000, '1')).toBeNull()
    expect(commandLine(42, -1, '1')).toBeNull()
    expect(commandLine(42, 5000, 'a\nb')).toBeNull()
  })

  it('field types are the same regular expressions in awk and in JavaScript', () => {
    const samples = ['0', '17', '1.5', '1.', '.5', '-1', 'a-b_C', 'a b', 'x"y', '', ' ']
    const awkSays = awk(
      [
        `{ print (${Object.entries(FIELD_TYPES)
          .map(([, re]) => `($0 ~ /${re}/)`)
          .join(' "" ')}) }`,
      ],
      samples.map((s) => `${s}\n`).join(''),
    ).stdout.split('\n')
    samples.forEach((s, i) => {
      expect(awkSays[i], JSON.stringify(s)).toBe(
        Object.values(FIELD_TYPES)
          .map((re) => (new RegExp(re).test(s) ? '1' : '0'))
          .join(''),
      )
    })
  })

  it('docs/keeper.md’s protocol table shows exactly these lines', () => {
    const docs = readFileSync(join(root, 'docs/keeper.md'), 'utf8')
    const shown = [...docs.matchAll(/^\| `\+ID ([A-Z]) ([A-Z ]+)` \|/gm)].map((m) => `${m[1]} ${m[2]}`)
    expect(shown).toEqual(Object.entries(LINES).map(([kind, fields]) => `${kind} ${fields.map(([name]) => name.toUpperCase()).join(' ')}`))
  })

  it('the whole program ignores a malformed line: a forged entry with a bad field removes nothing, a good one beside it is released', () => {
    const good = join(dir, 'good one')
    const kept = join(dir, 'kept')
    writeFileSync(good, 'x')
    writeFileSync(kept, 'x')
    const g = lstatSync(good, { bigint: true })
    const k = lstatSync(kept, { bigint: true })
    // The owner's task dir doesn't exist: it is dead at once.
    const input = `+1 ${tempLine(g.dev, g.ino, g.birthtimeNs, good)!}\n+2 T ${k.dev} ${k.ino} x ${kept}\n+3 T ${k.dev} ${kept}\n`
    expect(awk([KEEPER_AWK], input, { task: join(dir, 'no-task'), opid: '999999999', ostart: '1' }).status).toBe(0)
    expect(existsSync(good)).toBe(false)
    expect(existsSync(kept)).toBe(true)
  })

  it('KEEPER_AWK is its pieces, its first line naming it for ps', () => {
    expect(KEEPER_AWK.split('\n')[0]).toMatch(/^# exitguard-keeper: /)
    for (const piece of [AWK_MAIN, AWK_TEXT, AWK_PARSE, AWK_STEPS, AWK_RELEASE]) expect(KEEPER_AWK).toContain(piece)
    for (const piece of [SH_ALIVE, SH_GONE, SH_NOW, SH_GROUPLIVE, SH_STOP]) expect(KEEPER_WAIT).toContain(piece)
  })
})

/** The awk library with a BEGIN-only driver: it reads no input. */
const release = (driver: string, vars: Record<string, string> = {}) => awk([`BEGIN { ${driver}; exit 0 }`, AWK_TEXT, AWK_PARSE, AWK_STEPS, AWK_RELEASE], '', vars)

describe.skipIf(!linux)('the awk releases, each on its own, on real files', () => {
  function lockFile(name: string, token: string): { path: string; devino: string } {
    const path = join(dir, name)
    writeFileSync(path, `4242\n{"exitguard":1,"pid":4242,"token":"${token}"}\n`)
    const st = lstatSync(path)
    return { path, devino: `${st.dev} ${st.ino}` }
  }

  it('releaselock unlinks the lock only while (dev, ino) match and it holds the token', () => {
    const ours = lockFile('ours.pid', 'tok')
    release(`releaselock("${ours.devino}", "tok", ${JSON.stringify(ours.path)})`)
    expect(existsSync(ours.path)).toBe(false)

    const taken = lockFile('taken over.pid', 'theirs')
    release(`releaselock("${taken.devino}", "tok", ${JSON.stringify(taken.path)})`)
    expect(existsSync(taken.path)).toBe(true)

    const other = lockFile('other inode.pid', 'tok')
    const [dev, ino] = other.devino.split(' ')
    release(`releaselock("${dev} ${Number(ino) + 1}", "tok", ${JSON.stringify(other.path)})`)
    expect(existsSync(other.path)).toBe(true)
  })

  it('releaselock leaves alone a symlink to our lock, a FIFO and a directory, and never blocks on the FIFO', () => {
    const ours = lockFile('target.pid', 'tok')
    const link = join(dir, 'link.pid')
    symlinkSync(ours.path, link)
    release(`releaselock("${ours.devino}", "tok", ${JSON.stringify(link)})`)
    expect(existsSync(link)).toBe(true)
    expect(existsSync(ours.path)).toBe(true)
    for (const kind of ['fifo', 'dir']) {
      const path = join(dir, `${kind}.pid`)
      if (kind === 'fifo') execFileSync('mkfifo', [path])
      else mkdirSync(path)
      const st = lstatSync(path)
      release(`releaselock("${st.dev} ${st.ino}", "tok", ${JSON.stringify(path)})`)
      expect(existsSync(path), kind).toBe(true)
    }
  })

  it('flushtemps removes each entry whose (dev, ino, birth time) still match, in one batch, and no other', () => {
    const file = join(dir, `a file with 'quotes' and  spaces`)
    writeFileSync(file, 'x')
    const tree = join(dir, 'tree')
    mkdirSync(join(tree, 'a', 'b'), { recursive: true })
    writeFileSync(join(tree, 'a', 'b', 'c'), 'x')
    const outside = join(dir, 'outside')
    mkdirSync(outside)
    writeFileSync(join(outside, 'precious'), 'x')
    symlinkSync(outside, join(tree, 'a', 'link')) // rm -rf removes the link, never what it points to
    const replaced = join(dir, 'replaced since')
    writeFileSync(replaced, 'x')
    const id = (path: string) => {
      const st = lstatSync(path, { bigint: true })
      return { path, line: parsed([`+1 ${tempLine(st.dev, st.ino, st.birthtimeNs, path)!}`])[0]! }
    }
    const entries = [id(file), id(tree), id(replaced)]
    // Another birth time: a new file at the same path (a reused inode number would match (dev, ino)).
    entries[2]!.line[3] = '1.000000001'
    const set = entries.map(({ line: [, dev, ino, btime, path] }, i) => `tpath[${i + 1}] = ${awkString(path!)}; tid[${i + 1}] = "${dev} ${ino} " btime("${btime}")`)
    release(`${set.join('; ')}; nt = ${entries.length}; flushtemps()`)
    expect(existsSync(file)).toBe(false)
    expect(existsSync(tree)).toBe(false)
    expect(existsSync(join(outside, 'precious'))).toBe(true)
    expect(existsSync(replaced)).toBe(true)
  })

  it('stopcommand sends SIGTERM and returns only once the command has ended; SIGKILL after the grace for one that ignores SIGTERM', async () => {
    const gentle = spawn('sleep', ['60'], { stdio: 'ignore' })
    const stubborn = spawn('/bin/sh', ['-c', `trap '' TERM; echo ready; while :; do sleep 0.05; done`], { stdio: ['ignore', 'pipe', 'ignore'] })
    started.push(gentle, stubborn)
    await new Promise((r) => stubborn.stdout!.once('data', r)) // its trap is set
    for (const child of [gentle, stubborn]) {
      const start = startTimeOf(child.pid!)!
      release(`stopcommand(${child.pid}, 300, "${start}", "C")`, { task: '/proc' })
      expect(running(child.pid!), String(child.spawnargs)).toBe(false)
    }
  })

  it('stopcommand of a command already gone, or of a reused PID (another start time), signals nothing', () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' })
    started.push(child)
    release(`stopcommand(${child.pid}, 0, "1", "C")`, { task: '/proc' })
    expect(running(child.pid!)).toBe(true)
  })
})

function awkString(s: string): string {
  return JSON.stringify(s) // no backslashes or control characters in these test paths: awk reads it the same
}

describe.skipIf(!linux)('the sh waits, each on its own', () => {
  it('alive: true while the process runs with its start time; false for another start time, a dead PID, a zombie, an unreadable stat', async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' })
    started.push(child)
    const start = startTimeOf(child.pid!)!
    const alive = (d: string, pid: number | string, st: string) => sh([SH_ALIVE], 'alive "$@"', [d, String(pid), st]).status
    expect(alive(`/proc/${child.pid}`, child.pid!, start)).toBe(0)
    expect(alive(`/proc/${child.pid}`, child.pid!, String(Number(start) + 1))).toBe(1)
    expect(alive('', child.pid!, 'not the lstart')).toBe(1)
    // A zombie: its parent (sleep, exec'd by sh) never reaps it.
    const parent = spawn('/bin/sh', ['-c', 'true & exec sleep 60'], { stdio: 'ignore' })
    started.push(parent)
    let zombie = 0
    expect(
      await eventually(() => {
        zombie = zombieChildOf(parent.pid!)
        return zombie > 0
      }, 10_000),
    ).toBe(true)
    expect(alive(`/proc/${zombie}`, zombie, startTimeOf(zombie)!)).toBe(1)
    // A "stat" that opens but can't be read: as a /proc file whose task is released while read (ESRCH).
    mkdirSync(join(dir, 'task', 'stat'), { recursive: true })
    expect(alive(join(dir, 'task'), 1, '1')).toBe(1)
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    expect(alive(`/proc/${child.pid}`, child.pid!, start)).toBe(1)
  })

  it('gone returns once the owner is dead, and not before', async () => {
    const owner = spawn('sleep', ['60'], { stdio: 'ignore' })
    started.push(owner)
    const waiter = spawn('/bin/sh', ['-c', `set -f\n${SH_ALIVE}\n${SH_GONE}\ngone "$@"; echo gone`, 'sh', `/proc/${owner.pid}`, String(owner.pid), startTimeOf(owner.pid!)!], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    started.push(waiter)
    let out = ''
    waiter.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    await new Promise((r) => setTimeout(r, 300))
    expect(out).toBe('')
    owner.kill('SIGKILL')
    expect(await eventually(() => out === 'gone\n', 10_000)).toBe(true)
  })

  it('now gives ms since boot from /proc/uptime, with builtins only', () => {
    const { stdout } = sh([SH_NOW], 'now; echo "$t"')
    const uptime = Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * 1000
    expect(Math.abs(Number(stdout) - uptime)).toBeLessThan(5000)
  })

  it('grouplive: true while any process of the group runs, its leader gone or not; false once none is left', async () => {
    // The leader starts a member in its own group, then ends: the member still holds the group.
    const leader = spawn('/bin/sh', ['-c', 'sleep 60 & echo $!; exit 0'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true })
    started.push(leader)
    const pgid = leader.pid!
    const start = startTimeOf(pgid)!
    const member = Number(await new Promise<string>((r) => leader.stdout!.once('data', (d: Buffer) => r(d.toString()))))
    await new Promise((r) => leader.once('exit', r))
    const live = () => sh([SH_GROUPLIVE], 'grouplive "$@"', [`/proc/${pgid}`, String(pgid), start]).status
    expect(live()).toBe(0)
    process.kill(member, 'SIGKILL')
    expect(await eventually(() => live() === 1, 10_000)).toBe(true)
  })

  it('stop: one SIGTERM ("term T" printed), SIGKILL after the grace, returns once ended; resumed from FROM, it sends no second SIGTERM', async () => {
    const terms = join(dir, 'terms')
    const command = spawn('/bin/sh', ['-c', `trap 'echo TERM >> ${quoted(terms)}' TERM; echo ready; while :; do sleep 0.05; done`], { stdio: ['ignore', 'pipe', 'ignore'] })
    started.push(command)
    await new Promise((r) => command.stdout!.once('data', r))
    const start = startTimeOf(command.pid!)!
    const stop = (from: string) => sh([SH_ALIVE, SH_NOW, SH_GROUPLIVE, SH_STOP], 'stop "$@"', [`/proc/${command.pid}`, String(command.pid), start, '300', from, 'C'])
    const first = stop('')
    expect(first.stdout).toMatch(/^term \d+\n$/)
    expect(running(command.pid!)).toBe(false)
    expect(readFileSync(terms, 'utf8')).toBe('TERM\n')
    // Resumed for a command that still runs: the grace counts from FROM (long past), so SIGKILL at once.
    const again = spawn('/bin/sh', ['-c', `trap 'echo TERM >> ${quoted(terms)}' TERM; echo ready; while :; do sleep 0.05; done`], { stdio: ['ignore', 'pipe', 'ignore'] })
    started.push(again)
    await new Promise((r) => again.stdout!.once('data', r))
    writeFileSync(terms, '')
    const resumed = sh([SH_ALIVE, SH_NOW, SH_GROUPLIVE, SH_STOP], 'stop "$@"', [`/proc/${again.pid}`, String(again.pid), startTimeOf(again.pid!)!, '300', '1', 'C'])
    expect(resumed.stdout).toBe('')
    expect(running(again.pid!)).toBe(false)
    expect(readFileSync(terms, 'utf8')).toBe('')
  })
})

/** A zombie child of `pid`, or 0. */
function zombieChildOf(pid: number): number {
  const out = spawnSync('sh', ['-c', `for f in /proc/[0-9]*/stat; do read -r s < "$f" 2>/dev/null && echo "$s"; done`], { encoding: 'latin1' }).stdout
  for (const line of out.split('\n')) {
    const fields = line.slice(line.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' && Number(fields[1]) === pid) return Number(line.split(' ')[0])
  }
  return 0
}
