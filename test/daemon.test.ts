// Daemons: `exitguard start/stop/wait/status --lsb` through the real built bin, with real
// detached processes, real signals and real lock files; stopHolder/signalHolder from dist/.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ExitguardError, signalHolder, stopHolder } from '../src/index.js'
import { makeTempDir, root, startCommand, startNode, type ChildResult, type RunningChild } from './helpers/child.js'
import { endStarted, type Started } from './helpers/keepers.js'

const bin = join(root, 'dist/exitguard.cjs')
const linux = process.platform === 'linux'
if (!linux) console.log('test/daemon.test.ts: skipped, it reads /proc to check process identity, sessions and states (Linux only)')

let tmp: ReturnType<typeof makeTempDir>
let dir: string
let lock: string
/** Processes a test started; killed afterwards if they are still the same process. */
const started: Started[] = []
const children: RunningChild[] = []
beforeEach(() => {
  tmp = makeTempDir()
  dir = tmp.dir
  lock = join(dir, 'app.pid')
})
afterEach(async () => {
  await endStarted(started, children)
  tmp.cleanup()
})

/** /proc/<pid>/stat: state, process group, session, start time; null once the PID is gone. */
function stat(pid: number): { state: string; pgrp: number; session: number; startTime: string } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { state: f[0]!, pgrp: Number(f[2]), session: Number(f[3]), startTime: f[19]! }
  } catch {
    return null
  }
}
/** Running (not a zombie) and still the process that had `startTime`. */
function running(pid: number, startTime: string): boolean {
  const s = stat(pid)
  return s !== null && s.state !== 'Z' && s.startTime === startTime
}
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ')
  } catch {
    return ''
  }
}
/** Polls `condition` until true, for at most 20 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const signal = AbortSignal.timeout(20_000)
  while (!condition()) {
    if (signal.aborted) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const exitguard = (args: string[], cwd = dir): Promise<ChildResult> => startNode(bin, args, { cwd }).done
const firstLine = (path: string) => Number(readFileSync(path, 'utf8').split('\n')[0])

/** `exitguard start` to success; returns the daemon's PID (the lock's first line) and start time. */
async function startDaemon(command: string[], extra: string[] = []): Promise<{ pid: number; startTime: string; result: ChildResult }> {
  const result = await exitguard(['start', '--lock', lock, ...extra, '--', ...command])
  expect(result, result.stderr).toMatchObject({ code: 0, signal: null })
  const pid = firstLine(lock)
  const startTime = stat(pid)!.startTime
  started.push({ pid, start: startTime })
  return { pid, startTime, result }
}

/** A live process of our own to play the part of an unrelated process that got a PID reused. */
function bystander(): { pid: number; startTime: string; child: RunningChild } {
  const child = startCommand('sleep', ['60'])
  children.push(child)
  return { pid: child.pid, startTime: stat(child.pid)!.startTime, child }
}

/** The PID of `parent`'s first child once it has exec'd into something other than its parent's program. */
async function waitForChild(parent: number): Promise<number> {
  let child = 0
  await until(() => {
    try {
      child = Number(readFileSync(`/proc/${parent}/task/${parent}/children`, 'latin1').trim().split(' ')[0])
      return child > 0 && cmdline(child) !== cmdline(parent)
    } catch {
      return false
    }
  }, `PID ${parent} has a child`)
  return child
}

function record(pid: number, fields: Record<string, unknown> = {}): string {
  const me = { hostname: hostname(), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidNamespace: readlinkSync('/proc/self/ns/pid') }
  const rec = { exitguard: 1, pid, ...me, startTime: '1', createdAt: new Date().toISOString(), command: 'old-daemon', data: null, token: 'feedfeedfeedfeed', ...fields }
  return `${pid}\n${JSON.stringify(rec)}\n`
}

describe.skipIf(!linux)('exitguard start', () => {
  it('runs the command detached under a lock in its own name; a second start gets 75 naming the first', async () => {
    const { pid, startTime, result } = await startDaemon(['sleep', '60'])
    expect(result.stdout).toBe(`started: PID ${pid} (sleep 60) holds ${lock}; its output goes to /dev/null\n`)
    expect(cmdline(pid)).toBe('sleep 60') // the lock's first line is the command itself, not a wrapper
    const record = JSON.parse(readFileSync(lock, 'utf8').split('\n')[1]!) as { pid: number; startTime: string; command: string }
    expect(record).toMatchObject({ pid, startTime, command: 'sleep 60' })
    // setsid(): its own session and process group, so no terminal or group signal reaches it.
    expect(stat(pid)).toMatchObject({ session: pid, pgrp: pid })
    expect(readlinkSync(`/proc/${pid}/fd/0`)).toBe('/dev/null')
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe('/dev/null')

    // `start` has returned, yet the lock is held: the second start is refused and names the first.
    const second = await exitguard(['start', '--lock', lock, '--', 'sleep', '61'])
    expect(second.code).toBe(75)
    expect(second.stderr).toContain(`already running: PID ${pid} (sleep 60) on host ${hostname()}`)
    expect(second.stderr).toContain(`exitguard stop ${lock}`)
    expect(firstLine(lock)).toBe(pid)
    expect(running(pid, startTime)).toBe(true)
    const status = await exitguard(['status', lock, '--lsb'])
    expect(status).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^running: PID ${pid} \\(sleep 60\\)`)) })
  })

  it('detaches: a shell capturing its output returns at once, and SIGINT to that group does not reach the daemon', async () => {
    // If the daemon kept start's stdout, $(...) would wait for it (120 s, past the helper's 30 s bound).
    const script = `out=$(node "$1" start --lock "$2" -- sleep 120); echo "$out"; echo ready; exec sleep 60`
    const shell = spawn('sh', ['-c', script, 'sh', bin, lock], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
    let out = ''
    shell.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    const ended = new Promise((r) => shell.on('close', r))
    try {
      await until(() => out.includes('ready\n'), 'the shell printed ready')
    } finally {
      // Ctrl-C in the terminal: SIGINT to the whole foreground process group.
      process.kill(-shell.pid!, 'SIGINT')
      await ended
    }
    const pid = firstLine(lock)
    const startTime = stat(pid)!.startTime
    started.push({ pid, start: startTime })
    expect(out).toContain(`started: PID ${pid} (sleep 120)`)
    expect(stat(pid)!.session).not.toBe(shell.pid)
    expect(running(pid, startTime)).toBe(true)
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(0)
  })

  it('appends the command output to --log; its stdin is /dev/null', async () => {
    const log = join(dir, 'app.log')
    writeFileSync(log, 'earlier line\n')
    const { pid } = await startDaemon(['sh', '-c', 'echo out; echo err >&2; cat; echo "stdin ended $?"; exec sleep 60'], ['--log', log])
    await until(() => readFileSync(log, 'utf8').includes('stdin ended'), 'the daemon wrote to its log')
    expect(readFileSync(log, 'utf8')).toBe('earlier line\nout\nerr\nstdin ended 0\n')
    await until(() => cmdline(pid) === 'sleep 60', 'the daemon runs sleep')
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe(log)
    expect(readlinkSync(`/proc/${pid}/fd/2`)).toBe(log)
  })

  it('reports a command that cannot run (127, 126) and leaves no lock behind', async () => {
    const notFound = await exitguard(['start', '--lock', lock, '--', 'no-such-command-exitguard'])
    expect(notFound.code).toBe(127)
    expect(notFound.stderr).toContain('Could not start "no-such-command-exitguard": command not found')
    expect(existsSync(lock)).toBe(false)
    const script = join(dir, 'not-executable.sh')
    writeFileSync(script, '#!/bin/sh\nsleep 60\n')
    chmodSync(script, 0o644)
    const notExec = await exitguard(['start', '--lock', lock, '--', script])
    expect(notExec.code).toBe(126)
    expect(notExec.stderr).toContain('found but not executable')
    expect(existsSync(lock)).toBe(false)
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(3)
  })

  it('a start held at the lock does not run its command: the gated child is killed unrun', async () => {
    const { pid } = await startDaemon(['sleep', '60'])
    const marker = join(dir, 'ran')
    const second = await exitguard(['start', '--lock', lock, '--', 'sh', '-c', `touch ${marker}; exec sleep 60`])
    expect(second.code).toBe(75)
    expect(existsSync(marker)).toBe(false)
    expect(firstLine(lock)).toBe(pid)
  })

  it('four starts at once: exactly one runs its command, the others get 75 naming it', async () => {
    const runs = join(dir, 'runs')
    const results = await Promise.all([0, 1, 2, 3].map(() => exitguard(['start', '--lock', lock, '--', 'sh', '-c', `echo $$ >> ${runs}; exec sleep 60`])))
    const pid = firstLine(lock)
    started.push({ pid, start: stat(pid)!.startTime })
    expect(results.map((r) => r.code).sort()).toEqual([0, 75, 75, 75])
    for (const r of results.filter((r) => r.code === 75)) expect(r.stderr).toContain(`already running: PID ${pid} (sh -c echo`)
    await until(() => existsSync(runs), 'the daemon ran')
    expect(readFileSync(runs, 'utf8')).toBe(`${pid}\n`)
  })

  it('usage errors: 64 with what was wrong', async () => {
    const cases: [string[], string][] = [
      [['start', '--lock', lock], 'the command is missing'],
      [['start', '--', 'sleep', '1'], '--lock PATH is required'],
      [['start', '--lock', lock, 'sleep', '--', 'x'], 'unexpected argument "sleep"; put the command after --'],
      [['start', '--lock', lock, '--wait', 'soon', '--', 'sleep', '1'], '--wait must be a whole number of milliseconds'],
      [['stop'], 'the lock file PATH is missing'],
      [['stop', lock, '--signal', 'NOPE'], '--signal must be a signal name or number'],
      [['stop', lock, '--timeout', 'inf'], '--timeout must be a whole number of milliseconds'],
      [['wait', lock, lock], 'give exactly one lock file PATH'],
    ]
    const results = await Promise.all(cases.map(([args]) => exitguard(args)))
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i]!
      expect(r.code, args.join(' ')).toBe(64)
      expect(r.stderr, args.join(' ')).toContain(message)
    }
    expect(existsSync(lock)).toBe(false)
    expect((await exitguard(['start', '--help'])).stdout).toMatch(/^Usage: exitguard start --lock PATH/)
  })

  it('--wait takes the lock over once the first daemon is stopped', async () => {
    const first = await startDaemon(['sleep', '60'])
    const waiter = startNode(bin, ['start', '--lock', lock, '--wait', '30000', '--', 'sleep', '61'], { cwd: dir })
    children.push(waiter)
    await until(waiting, 'the second start waits')
    expect((await exitguard(['stop', lock])).code).toBe(0)
    const r = await waiter.done
    expect(r, r.stderr).toMatchObject({ code: 0 })
    const pid = firstLine(lock)
    started.push({ pid, start: stat(pid)!.startTime })
    expect(pid).not.toBe(first.pid)
    expect(cmdline(pid)).toBe('sleep 61')
  })
})

/** True once a second start waits: its attempt keeps a `.app.pid.<token>.new` file beside the lock. */
const waiting = () => readdirSync(dir).some((n) => n.startsWith('.app.pid.') && n.endsWith('.new'))

describe.skipIf(!linux)('exitguard stop', () => {
  it('ends the daemon and frees the lock', async () => {
    const { pid, startTime } = await startDaemon(['sleep', '60'])
    const r = await exitguard(['stop', lock])
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^stopped: PID ${pid} ended \\d+ ms after SIGTERM\\n$`)) })
    expect(running(pid, startTime)).toBe(false)
    expect(existsSync(lock)).toBe(false)
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(3)
    // Stopping what is not running is success (LSB).
    expect(await exitguard(['stop', lock])).toMatchObject({ code: 0, stdout: `not running: there is no lock file ${lock}\n` })
  })

  it('never signals a reused PID: a record naming a live unrelated process (another start time) leaves it alive', async () => {
    const other = bystander()
    writeFileSync(lock, record(other.pid, { startTime: String(Number(other.startTime) - 7) }))
    const r = await exitguard(['stop', lock])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`not running: PID ${other.pid} now belongs to another process (PID reused); nothing was signalled; removed the stale lock file it left\n`)
    expect(running(other.pid, other.startTime)).toBe(true)
    expect(existsSync(lock)).toBe(false) // the stale file is removed: the daemon that wrote it is gone
    // The library says the same, and signalHolder sends nothing.
    writeFileSync(lock, record(other.pid, { startTime: String(Number(other.startTime) - 7) }))
    expect(signalHolder(lock, 'SIGTERM')).toMatchObject({ sent: false, pid: other.pid })
    await expect(stopHolder(lock)).resolves.toMatchObject({ stopped: true, how: 'not-running', pid: other.pid })
    expect(running(other.pid, other.startTime)).toBe(true)
  })

  it('refuses what it cannot verify: a bare PID, another host, another PID namespace, a record without start time', async () => {
    const other = bystander()
    // A live process as PID 1 of a namespace of its own: as root, the host judges it alive there (containers.test.ts).
    const inner = process.getuid?.() === 0 ? startCommand('/usr/bin/unshare', ['--kill-child', '--pid', '--fork', 'sleep', '60']) : null
    if (inner) children.push(inner)
    const innerPid = inner ? await waitForChild(inner.pid) : 0
    const namespace = inner ? readlinkSync(`/proc/${innerPid}/ns/pid`) : 'pid:[1]'
    const cases: [string, string, string][] = [
      ['bare PID', `${other.pid}\n`, 'the file holds a bare PID without a start time'],
      // Another machine has another boot id: with this one's, a changed hostname is still this machine.
      ['another host', record(other.pid, { hostname: 'elsewhere', bootId: 'another-machine', startTime: other.startTime }), 'held on another host (elsewhere)'],
      // A namespace the host can't look into: judged from it only as root (see containers.test.ts).
      [
        'another namespace',
        inner ? record(1, { pidNamespace: namespace, startTime: stat(innerPid)!.startTime }) : record(other.pid, { pidNamespace: namespace, startTime: other.startTime }),
        'held in another PID namespace',
      ],
      ['no start time', record(other.pid, { startTime: null }), 'its record has no start time'],
    ]
    for (const [what, body, message] of cases) {
      writeFileSync(lock, body)
      const r = await exitguard(['stop', lock, '--kill', '--timeout', '0'])
      expect(r.code, what).toBe(4)
      expect(r.stderr, what).toContain(message)
      expect(r.stderr, what).toMatch(/^exitguard: Won't signal/)
      expect(running(other.pid, other.startTime), what).toBe(true)
      expect(readFileSync(lock, 'utf8'), what).toBe(body)
      expect(() => signalHolder(lock, 'SIGKILL'), what).toThrow(ExitguardError)
    }
    expect(running(other.pid, other.startTime)).toBe(true)
  })

  it("another user's daemon: refused with EPERM (4) and left alive (stop run as uid 65534)", async (ctx) => {
    const skip = (reason: string) => {
      console.log(`skipped: ${reason}`)
      return ctx.skip(reason)
    }
    if (process.getuid?.() !== 0) return skip('needs root to run stop as uid 65534')
    const { spawnSync } = await import('node:child_process')
    const readable = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(bin)}, require('fs').constants.R_OK)`], { uid: 65534, gid: 65534 })
    if (readable.status !== 0) return skip(`uid 65534 can't read ${bin} (the clone is in a private directory)`)
    chmodSync(dir, 0o755)
    const { pid, startTime } = await startDaemon(['sleep', '60'])
    const r = spawnSync(process.execPath, [bin, 'stop', lock, '--kill', '--timeout', '0'], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 30_000 })
    expect(r.status, r.stderr).toBe(4)
    expect(r.stderr).toContain(`Not permitted to signal PID ${pid}, which holds ${lock}`)
    expect(running(pid, startTime)).toBe(true)
    expect(firstLine(lock)).toBe(pid)
  })

  it('--kill ends a daemon that ignores SIGTERM; without it, 1 while it still runs', async () => {
    const { pid, startTime } = await startDaemon(['sh', '-c', 'trap "" TERM; exec sleep 60'])
    // The ignored disposition survives exec: once sleep runs, the trap is in place.
    await until(() => cmdline(pid) === 'sleep 60', 'the daemon runs sleep')
    const soft = await exitguard(['stop', lock, '--timeout', '300'])
    expect(soft.code).toBe(1)
    expect(soft.stderr).toContain(`still running: PID ${pid} still runs 300 ms after SIGTERM`)
    expect(running(pid, startTime)).toBe(true)
    const hard = await exitguard(['stop', lock, '--timeout', '300', '--kill'])
    expect(hard, hard.stderr).toMatchObject({ code: 0 })
    expect(hard.stdout).toMatch(new RegExp(`^stopped: PID ${pid} ignored SIGTERM for 300 ms; it ended \\d+ ms after SIGKILL\\n$`))
    expect(running(pid, startTime)).toBe(false)
    expect(existsSync(lock)).toBe(false)
  })

  it('stops a lock held by a library process (it releases on SIGTERM and dies by it)', async () => {
    const holder = startNode(join(root, 'test/fixtures/pid-lock.mjs'), ['hold', lock])
    children.push(holder)
    await holder.waitFor('ready')
    const r = await stopHolder(lock, { timeout: 20_000 })
    expect(r).toMatchObject({ stopped: true, how: 'signal', pid: holder.pid })
    expect(r.reason).toMatch(new RegExp(`^PID ${holder.pid} (ended|released the lock) \\d+ ms after SIGTERM$`))
    expect(await holder.done).toMatchObject({ signal: 'SIGTERM' })
    expect(existsSync(lock)).toBe(false)
  })

  it("exitguard run's wrapper SIGKILLed while its keeper stops the command: stop says it still runs (1), then waits for the keeper (0)", async () => {
    // The command ignores SIGTERM, so the keeper lets it run out the grace period before SIGKILL.
    const marker = join(dir, 'command.pid')
    const run = startNode(bin, ['run', '--lock', lock, '--grace', '3000', '--', 'sh', '-c', `echo $$ > ${marker}; trap '' TERM; echo ready; exec sleep 120`])
    children.push(run)
    await run.waitFor('ready')
    const command = Number(readFileSync(marker, 'utf8'))
    const commandStart = stat(command)!.startTime
    started.push({ pid: command, start: commandStart })
    const keeper = (JSON.parse(readFileSync(lock, 'utf8').split('\n')[1]!) as { keeper: { pid: number; startTime: string } }).keeper
    started.push({ pid: keeper.pid, start: keeper.startTime })
    run.child.kill('SIGKILL')
    await until(() => stat(run.pid) === null || stat(run.pid)!.state === 'Z', 'the wrapper is dead')
    // The command runs under the lock: status --lsb says so, and stop must not say otherwise.
    expect((await exitguard(['status', '--lsb', lock])).code).toBe(0)
    const early = await exitguard(['stop', lock, '--timeout', '0'])
    expect(early, early.stdout).toMatchObject({ code: 1, stderr: expect.stringContaining(`its keeper (PID ${keeper.pid}) is releasing`) })
    expect(running(command, commandStart)).toBe(true)
    // Waiting long enough: the keeper SIGKILLs it after the grace period and frees the lock.
    const late = await exitguard(['stop', lock, '--timeout', '60000'])
    expect(late, late.stderr).toMatchObject({ code: 0, stdout: expect.stringContaining('nothing was signalled') })
    expect(running(command, commandStart)).toBe(false)
    expect(existsSync(lock)).toBe(false)
  })

  it.skipIf(process.getuid?.() !== 0 || !existsSync('/usr/bin/unshare'))(
    "in a PID namespace whose /proc is the host's, a record is never checked against the host's processes: nothing is signalled",
    async () => {
      // Without the check, the host's /proc/2 "proved" that PID 2 here was the recorded process, and sleep got SIGTERM.
      const r = await startCommand('/usr/bin/unshare', ['--pid', '--fork', process.execPath, join(root, 'test/fixtures/host-proc.cjs'), join(root, 'dist/cjs/index.js'), lock]).done
      expect(r.stderr).toBe('')
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 'EUNVERIFIED', pid: 1, sleepAlive: true, state: 'held' })
    },
  )

  it('stopHolder and signalHolder report what happened', async () => {
    await expect(stopHolder(lock)).resolves.toEqual({ stopped: true, how: 'not-running', pid: null, owner: null, reason: `there is no lock file ${lock}`, waited: 0 })
    const { pid, startTime } = await startDaemon(['sh', '-c', 'trap "echo hup" HUP; while :; do sleep 0.05; done'], ['--log', join(dir, 'log')])
    await until(() => cmdline(pid).startsWith('sh') && existsSync(join(dir, 'log')), 'the daemon runs')
    // The trap is set once the loop has started a sleep child.
    await until(() => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() !== '', 'the loop runs')
    expect(signalHolder(lock, 'SIGHUP')).toMatchObject({ sent: true, pid, reason: `sent SIGHUP to PID ${pid}` })
    await until(() => readFileSync(join(dir, 'log'), 'utf8').includes('hup'), 'the trap ran')
    expect(running(pid, startTime)).toBe(true)
    const r = await stopHolder(lock, { signal: 'SIGTERM', timeout: 5000 })
    expect(r).toMatchObject({ stopped: true, how: 'signal', pid, owner: { pid, startTime } })
    expect(running(pid, startTime)).toBe(false)
    await expect(stopHolder(lock, { timeout: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    expect(() => signalHolder(lock, 'SIGNOPE' as NodeJS.Signals)).toThrow(/must be a signal this OS knows/)
  })

  it('stopHolder sends killSignal, and still takes signal, its deprecated name', async () => {
    const log = join(dir, 'log')
    for (const options of [{ killSignal: 'SIGUSR1' }, { signal: 'SIGUSR1' }] as const) {
      const { pid, startTime } = await startDaemon(['sh', '-c', 'trap "echo usr1; exit 0" USR1; while :; do sleep 0.05; done'], ['--log', log])
      await until(() => cmdline(pid).startsWith('sh') && existsSync(log), 'the daemon runs')
      await until(() => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() !== '', 'the loop runs')
      const r = await stopHolder(lock, { ...options, timeout: 5000 })
      expect(r).toMatchObject({ stopped: true, how: 'signal', pid, reason: expect.stringContaining('after SIGUSR1') })
      expect(running(pid, startTime)).toBe(false)
      expect(readFileSync(log, 'utf8')).toContain('usr1')
      unlinkSync(log)
    }
    await expect(stopHolder(lock, { killSignal: 'SIGTERM', signal: 'SIGTERM' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"killSignal"') })
    await expect(stopHolder(lock, { killSignal: 'SIGNOPE' as NodeJS.Signals })).rejects.toThrow(/"killSignal".*must be a signal this OS knows/)
  })
})

describe.skipIf(!linux)('status --lsb and wait', () => {
  it('after a SIGKILL: 1 while the PID file is left, the next start takes over, 3 once it is removed', async () => {
    const first = await startDaemon(['sleep', '60'])
    process.kill(first.pid, 'SIGKILL')
    await until(() => !running(first.pid, first.startTime), 'the daemon died')
    const dead = await exitguard(['status', lock, '--lsb'])
    expect(dead.code).toBe(1)
    expect(dead.stdout).toMatch(new RegExp(`^dead: PID ${first.pid} \\(sleep 60\\).* is gone \\(.*\\) but ${lock} is left`))
    expect(existsSync(lock)).toBe(true)

    const next = await startDaemon(['sleep', '61'])
    expect(next.pid).not.toBe(first.pid)
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(0)
    process.kill(next.pid, 'SIGKILL')
    await until(() => !running(next.pid, next.startTime), 'the second daemon died')
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(1)
    unlinkSync(lock)
    expect(await exitguard(['status', lock, '--lsb'])).toMatchObject({ code: 3, stdout: `not running: there is no PID file ${lock}\n` })
  })

  it('status --lsb says 4 (unknown) for what it cannot judge', async () => {
    mkdirSync(join(dir, 'a-dir'))
    expect((await exitguard(['status', join(dir, 'a-dir'), '--lsb'])).code).toBe(4)
    writeFileSync(lock, 'garbage\n')
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(4)
    writeFileSync(lock, record(process.pid, { hostname: 'elsewhere', bootId: 'another-machine' }))
    expect((await exitguard(['status', lock, '--lsb'])).code).toBe(4)
  })

  it('wait: 0 at once when free, 75 on timeout, 0 once the holder dies', async () => {
    expect(await exitguard(['wait', lock])).toMatchObject({ code: 0, stdout: `free: ${lock} is not held\n` })
    const { pid, startTime } = await startDaemon(['sleep', '60'])
    const timedOut = await exitguard(['wait', lock, '--timeout', '100'])
    expect(timedOut.code).toBe(75)
    expect(timedOut.stderr).toContain(`still held by PID ${pid} (sleep 60)`)
    const waiter = startNode(bin, ['wait', lock], { cwd: dir })
    children.push(waiter)
    process.kill(pid, 'SIGKILL')
    const r = await waiter.done
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`free: ${lock} was held by PID ${pid} (sleep 60)`)
    expect(running(pid, startTime)).toBe(false)
  })
})

describe('documented defaults', () => {
  it('docs/daemons.md and stop --help state the timeout the code uses (10000 ms)', async () => {
    const doc = readFileSync(join(root, 'docs/daemons.md'), 'utf8')
    expect(doc).toContain('(default **10000**, as `docker stop`)')
    // The help text is built from the constant the code uses.
    const help = await exitguard(['stop', '--help'], root)
    expect(help.stdout).toContain('how long to wait for it to end (default 10000)')
    expect(doc).toContain('`--timeout MS` (default: for ever)')
    expect((await exitguard(['wait', '--help'], root)).stdout).toContain('(default: wait for ever)')
  })
})
