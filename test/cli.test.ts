// The `exitguard` command, always through the real built bin (dist/exitguard.cjs), as rimraf tests its bin.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { constants as osConstants, hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { forwardedSignals } from '../src/cli/cli-signals.js'
import { deadPid, fixtures, makeTempDir, root, SIGNALS_WITH_TWO_NAMES, startCommand, startNode, type ChildResult, type RunningChild } from './helpers/child.js'
import { makeConsumer, pack } from './helpers/consumer.js'
import { endStarted, eventually, processStarted, type Started } from './helpers/keepers.js'

const bin = join(root, 'dist/exitguard.cjs')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> }

let tmp: ReturnType<typeof makeTempDir>
let dir: string
let lock: string
const children: RunningChild[] = []
const orphans: Started[] = []
beforeEach(() => {
  tmp = makeTempDir()
  dir = tmp.dir
  lock = join(dir, 'job.pid')
})
afterEach(async () => {
  // Only the very processes the test started: by now a PID may belong to another test's.
  // SIGTERM, not SIGKILL: a wrapper forwards it, so its command ends too and the pipes close.
  await endStarted(orphans, children, 'SIGTERM')
  tmp.cleanup()
})

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal)
  } catch {
    // gone already
  }
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts the bin; bounded by the helper's timeout. */
function start(args: string[], env: NodeJS.ProcessEnv = {}): RunningChild {
  const c = startNode(bin, args, { env, cwd: dir })
  children.push(c)
  return c
}
const exitguard = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildResult> => start(args, env).done

/** A command that prints its PID (the same after exec) and "ready", then sleeps until signalled. */
const sleeper = ['sh', '-c', 'echo $$; echo ready; exec sleep 60']
/** The PID the sleeper printed on its first line. */
const childPid = (c: RunningChild) => Number(c.stdout().split('\n')[0])

/** Resolves once a process is waiting for `lock`: its attempt keeps a private `.<name>.<token>.new` file next to it. */
async function waiting(path: string, timeout = 20_000): Promise<void> {
  const name = path.split('/').pop()!
  const signal = AbortSignal.timeout(timeout)
  while (!readdirSync(join(path, '..')).some((n) => n.startsWith(`.${name}.`) && n.endsWith('.new'))) {
    signal.throwIfAborted()
    // 1 ms, not setImmediate: several waits at once must not starve the children of CPU.
    await new Promise((r) => setTimeout(r, 1))
  }
}

describe('help, version and usage errors', () => {
  it('--version prints the package version', async () => {
    for (const flag of ['--version', '-v']) {
      const r = await exitguard([flag])
      expect(r).toMatchObject({ code: 0, signal: null, stdout: `${pkg.version}\n`, stderr: '' })
    }
  })

  it('--help for the program and each command, on stdout, exit 0', async () => {
    for (const args of [['--help'], ['-h'], ['run', '--help'], ['status', '--help'], ['reap', '--help'], ['run', '--lock', 'x', '--help', '--', 'true']]) {
      const r = await exitguard(args)
      expect(r.code, args.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/^Usage: exitguard/)
      expect(r.stderr).toBe('')
    }
    expect((await exitguard(['run', '--help'])).stdout).toContain('75   the lock is held')
    expect((await exitguard(['status', '--help'])).stdout).toContain('0 free, 1 held, 2 stale')
  })

  it.each([
    [[], 'a command is missing'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['--bogus'], "Unknown option '--bogus'"],
    [['run', '--lock', 'x.pid'], 'the command is missing'],
    [['run', '--lock', 'x.pid', '--'], 'the command is missing'],
    [['run', '--', 'true'], '--lock PATH is required'],
    [['run', '--lock', '', '--', 'true'], 'the --lock path is empty'],
    [['run', '--lock', 'x.pid/', '--', 'true'], 'the --lock "x.pid/" ends with "/"; a lock is a file'],
    [['run', '--lock', '.', '--', 'true'], 'the --lock "." names a directory'],
    [['status', 'x.pid/'], 'the PATH "x.pid/" ends with "/"'],
    [['status', ''], 'the lock file PATH is empty'],
    [['run', '--lock', 'x.pid', 'sleep', '1'], 'unexpected argument "sleep"; put the command after --'],
    [['run', '--lock', 'x.pid', '--nope', '--', 'true'], "Unknown option '--nope'"],
    [['run', '--lock', 'x.pid', '--wait', 'soon', '--', 'true'], '--wait must be a whole number of milliseconds'],
    [['run', '--lock', 'x.pid', '--wait', '-5', '--', 'true'], 'exitguard run:'],
    [['run', '--lock', 'x.pid', '--data', '{oops', '--', 'true'], '--data must be JSON'],
    [['run', '--lock', 'x.pid', '--data', JSON.stringify('x'.repeat(5000)), '--', 'true'], 'at most 4096 bytes'],
    [['run', '--lock', 'postgres://u:hunter2@db/app?key=k', '--', 'true'], 'must not contain a password'],
    [['run', '--lock', 'postgres://u@db/app?key=k&password=hunter2', '--', 'true'], 'must not contain a password'],
    [['run', '--lock', 'postgres://u@db/app?key=k&sslpassword=hunter2', '--', 'true'], 'must not contain a password'],
    [['run', '--lock', 'postgres://u@db/app', '--', 'true'], 'needs exactly one key parameter'],
    [['status'], 'the lock file PATH is missing'],
    [['status', 'a', 'b'], 'give exactly one lock file PATH'],
    [['reap', 'a', 'b'], 'give at most one DIR'],
    [['reap', '--prefix', 'a/b'], 'prefix'],
  ])('%j: exit 64 and says what was wrong', async (args, message) => {
    const r = await exitguard(args)
    expect(r.code).toBe(64)
    expect(r.stderr).toContain(message)
    expect(r.stderr).not.toContain('hunter2')
    expect(r.stdout).toBe('')
    expect(existsSync(join(dir, 'x.pid'))).toBe(false)
  })
})

describe('exitguard run', () => {
  it('everything after -- reaches the command untouched', async () => {
    const argv = ['--lock', 'y', '--help', '--', '', ' spaced  out ', '-v', '*', '$HOME']
    const r = await exitguard(['run', '--lock', lock, '--', 'sh', '-c', 'for a; do printf "[%s]\\n" "$a"; done', 'sh', ...argv])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(argv.map((a) => `[${a}]\n`).join(''))
  })

  it('a second run gets 75 and one line naming the holder; the first keeps the lock', async () => {
    const first = start(['run', '--lock', lock, '--data', '{"job":"export"}', '--', ...sleeper])
    await first.waitFor('ready')
    const second = await exitguard(['run', '--lock', lock, '--', 'sh', '-c', 'echo should not run'])
    expect(second.code).toBe(75)
    expect(second.stdout).toBe('')
    const lines = second.stderr.trimEnd().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(`^exitguard: The lock ${lock} is held by PID ${first.pid} \\(exitguard run -- sh -c echo \\$\\$; echo ready; exec sleep 60\\) on host ${hostname()} since \\d{4}-\\d\\d-\\d\\dT`),
    )
    const status = await exitguard(['status', '--json', lock])
    expect(status.code).toBe(1)
    expect(JSON.parse(status.stdout).owner).toMatchObject({ pid: first.pid, data: { job: 'export' } })

    first.child.kill('SIGTERM')
    expect(await first.done).toMatchObject({ signal: 'SIGTERM' })
    expect(existsSync(lock)).toBe(false)
  })

  it('--wait: a waiting run starts the moment the holder ends', async () => {
    const first = start(['run', '--lock', lock, '--', ...sleeper])
    await first.waitFor('ready')
    const second = start(['run', '--lock', lock, '--wait', '60000', '--', 'sh', '-c', 'echo second ran'])
    await waiting(lock)
    expect(second.stdout()).toBe('')
    first.child.kill('SIGTERM')
    await first.done
    expect(await second.done).toMatchObject({ code: 0, signal: null, stdout: 'second ran\n' })
    expect(existsSync(lock)).toBe(false)
  })

  it('--wait that runs out: 75, and the message says how long it waited', async () => {
    const first = start(['run', '--lock', lock, '--', ...sleeper])
    await first.waitFor('ready')
    const r = await exitguard(['run', '--lock', lock, '--wait', '50', '--', 'true'])
    expect(r.code).toBe(75)
    expect(r.stderr).toMatch(new RegExp(`^exitguard: Gave up after waiting \\d+ ms for the lock ${lock}: still held by PID ${first.pid} `))
  })

  it('SIGINT while waiting: dies by SIGINT without starting the command', async () => {
    const first = start(['run', '--lock', lock, '--', ...sleeper])
    await first.waitFor('ready')
    const second = start(['run', '--lock', lock, '--wait', 'inf', '--', 'sh', '-c', 'echo should not run'])
    await waiting(lock)
    second.child.kill('SIGINT')
    expect(await second.done).toMatchObject({ code: null, signal: 'SIGINT', stdout: '' })
    expect(JSON.parse((await exitguard(['status', '--json', lock])).stdout).owner.pid).toBe(first.pid)
  })

  it("passes the command's exit code through and releases the lock", async () => {
    for (const code of [0, 1, 7, 75, 255]) {
      const r = await exitguard(['run', '--lock', lock, '--', 'sh', '-c', `exit ${code}`])
      expect(r).toMatchObject({ code, signal: null })
      expect(existsSync(lock)).toBe(false)
    }
  })

  it('SIGINT to the wrapper is forwarded; the child ends and the wrapper dies by SIGINT; the lock is gone', async () => {
    const run = start(['run', '--lock', lock, '--', ...sleeper])
    await run.waitFor('ready')
    const pid = childPid(run)
    run.child.kill('SIGINT')
    expect(await run.done).toMatchObject({ code: null, signal: 'SIGINT' })
    expect(alive(pid)).toBe(false)
    expect(existsSync(lock)).toBe(false)
  })

  it('SIGTERM and SIGHUP are forwarded too', async () => {
    for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
      const run = start(['run', '--lock', lock, '--', ...sleeper])
      await run.waitFor('ready')
      run.child.kill(signal)
      expect(await run.done).toMatchObject({ code: null, signal })
      expect(existsSync(lock)).toBe(false)
    }
  })

  it('a child that handles the signal decides: it exits 3, so the wrapper exits 3', async () => {
    const script = "process.on('SIGINT', () => { console.log('bye'); process.exit(3) }); console.log('ready'); setInterval(() => {}, 1000)"
    const run = start(['run', '--lock', lock, '--', process.execPath, '-e', script])
    await run.waitFor('ready')
    run.child.kill('SIGINT')
    expect(await run.done).toMatchObject({ code: 3, signal: null, stdout: 'ready\nbye\n' })
    expect(existsSync(lock)).toBe(false)
  })

  it('a child killed by a signal: the wrapper dies by the same signal after releasing', async () => {
    for (const signal of ['SIGTERM', 'SIGKILL', 'SIGSEGV'] as const) {
      const r = await exitguard(['run', '--lock', lock, '--', 'sh', '-c', `kill -${signal.slice(3)} $$`])
      expect(r, signal).toMatchObject({ code: null, signal })
      expect(existsSync(lock)).toBe(false)
    }
  })

  it('--no-keeper: SIGKILL of the wrapper leaves the child running and a stale lock, which the next run takes over', async () => {
    const run = start(['run', '--lock', lock, '--tmpdir', '--no-keeper', '--', ...sleeper], { TMPDIR: dir })
    await run.waitFor('ready')
    const pid = childPid(run)
    orphans.push(processStarted(pid))
    run.child.kill('SIGKILL')
    // The orphan still holds the wrapper's stdout pipe: 'close' comes only once it is gone too.
    await new Promise((r) => run.child.once('exit', r))
    expect(alive(pid)).toBe(true) // documented: nothing kills the orphan
    const status = await exitguard(['status', lock])
    expect(status.code).toBe(2)
    expect(status.stdout).toBe(
      `stale: ${lock} was held by ${status.stdout.slice(`stale: ${lock} was held by `.length).split(', now dead')[0]}, now dead (no process has PID ${run.pid}); the next run takes it over\n`,
    )

    const next = await exitguard(['run', '--lock', lock, '--', 'sh', '-c', 'echo took over'])
    expect(next).toMatchObject({ code: 0, stdout: 'took over\n' })
    // One line for cron logs, naming the run that died holding the lock.
    expect(next.stderr).toMatch(
      new RegExp(
        `^exitguard: took over ${lock}: the last run, PID ${run.pid} \\(exitguard run -- sh -c echo \\$\\$; echo ready; exec sleep 60\\) on host ${hostname()} since \\d{4}-[^,]*, died without releasing it\\.\n$`,
      ),
    )
    expect(existsSync(lock)).toBe(false)
    killQuietly(pid)
    await run.done

    // The killed wrapper's private temp dir is a leftover that reap recognises.
    const reaped = await exitguard(['reap', dir, '--json'])
    expect(JSON.parse(reaped.stdout).entries).toEqual([{ path: expect.stringMatching(new RegExp(`^${dir}/run-exitguard-[\\w-]*-${run.pid}-`)), kind: 'dir', reason: `no process has PID ${run.pid}` }])
  })

  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p))
  it.skipIf(process.platform !== 'linux' || !setpriv)('the documented Linux recipe: setpriv --pdeathsig ends the command when the wrapper is SIGKILLed', async () => {
    const run = start(['run', '--lock', lock, '--no-keeper', '--', setpriv!, '--pdeathsig', 'TERM', '--', ...sleeper])
    await run.waitFor('ready')
    const pid = childPid(run)
    orphans.push(processStarted(pid))
    run.child.kill('SIGKILL')
    // 'close' needs the command's end too (it holds the pipes): the kernel's SIGTERM to it brings that.
    expect(await run.done).toMatchObject({ signal: 'SIGKILL' })
    // Gone, or a zombie waiting for init (which may not reap in a container). The pipes can close
    // a moment before the process has finished dying, so give it a bounded while.
    const state = () => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.[0]
      } catch {
        return undefined
      }
    }
    for (let i = 0; i < 400 && state() !== undefined && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 5))
    expect(state() === undefined || state() === 'Z').toBe(true)
  })

  it('--tmpdir: TMPDIR and EXITGUARD_TMPDIR name a private dir, removed afterwards', async () => {
    const r = await exitguard(['run', '--lock', lock, '--tmpdir', '--', 'sh', '-c', 'echo "$TMPDIR"; echo "$EXITGUARD_TMPDIR"; echo hi > "$TMPDIR/file"; stat -c %a "$TMPDIR"'], { TMPDIR: dir })
    expect(r.code).toBe(0)
    const [tmpdir, same, mode] = r.stdout.trimEnd().split('\n')
    expect(same).toBe(tmpdir)
    expect(tmpdir).toMatch(new RegExp(`^${dir}/run-`))
    expect(mode).toBe('700')
    expect(existsSync(tmpdir!)).toBe(false)
    expect(readdirSync(dir)).toEqual([])
  })

  it('--tmpdir is removed when the wrapper is signalled; without --tmpdir nothing is set', async () => {
    const run = start(['run', '--lock', lock, '--tmpdir', '--', 'sh', '-c', 'echo "$EXITGUARD_TMPDIR"; echo ready; exec sleep 60'], { TMPDIR: dir })
    await run.waitFor('ready')
    const tmpdir = run.stdout().split('\n')[0]!
    expect(existsSync(tmpdir)).toBe(true)
    run.child.kill('SIGTERM')
    expect(await run.done).toMatchObject({ signal: 'SIGTERM' })
    expect(existsSync(tmpdir)).toBe(false)

    // biome-ignore lint/suspicious/noTemplateCurlyInString: sh expands it, not JavaScript
    const bare = await exitguard(['run', '--lock', lock, '--', 'sh', '-c', 'echo "[${EXITGUARD_TMPDIR-unset}]"'], { EXITGUARD_TMPDIR: undefined })
    expect(bare.stdout).toBe('[unset]\n')
  })

  it('a command that is not found: 127 (as a shell), not executable: 126; the lock is released', async () => {
    // Worded as a shell would, not as spawn's "spawn no-such-command ENOENT".
    const missing = await exitguard(['run', '--lock', lock, '--', 'no-such-command-exitguard'], { PATH: '/nowhere:/usr/bin:/bin' })
    expect(missing).toMatchObject({ code: 127, stderr: 'exitguard: "no-such-command-exitguard": command not found (searched PATH=/nowhere:/usr/bin:/bin)\n' })
    expect(await exitguard(['run', '--lock', lock, '--', './nope.sh'])).toMatchObject({ code: 127, stderr: 'exitguard: "./nope.sh": no such file\n' })
    const badInterpreter = join(dir, 'bad-interpreter.sh')
    writeFileSync(badInterpreter, '#!/no/such/interpreter\n', { mode: 0o755 })
    expect(await exitguard(['run', '--lock', lock, '--', badInterpreter])).toMatchObject({
      code: 127,
      stderr: `exitguard: ${JSON.stringify(badInterpreter)}: its interpreter (the #! line) was not found\n`,
    })
    // execve refuses a file without any x bit even to root.
    const script = join(dir, 'not-executable.sh')
    writeFileSync(script, 'echo hi\n', { mode: 0o644 })
    expect(await exitguard(['run', '--lock', lock, '--', script])).toMatchObject({
      code: 126,
      stderr: `exitguard: ${JSON.stringify(script)}: permission denied (not an executable file, or a directory)\n`,
    })
    expect(existsSync(lock)).toBe(false)
  })

  it('a lock path that cannot be a lock file: 73 and the reason', async () => {
    mkdirSync(join(dir, 'a-dir'))
    const isDir = await exitguard(['run', '--lock', join(dir, 'a-dir'), '--', 'true'])
    expect(isDir.code).toBe(73)
    expect(isDir.stderr).toContain('is a directory, not a lock file')
    const noParent = await exitguard(['run', '--lock', join(dir, 'missing', 'x.pid'), '--', 'true'])
    expect(noParent.code).toBe(73)
    expect(noParent.stderr).toContain('its directory does not exist')
  })
})

describe('exitguard run: every signal that would end the wrapper ends the command first', () => {
  // Issue 9 #6: these ended the wrapper through the exit hooks, which released the lock while
  // the command ran on, and a waiting run started beside it. INT, TERM, HUP are tested above.
  const signals = ['SIGALRM', 'SIGABRT', 'SIGVTALRM', 'SIGXCPU', 'SIGXFSZ', 'SIGTRAP', 'SIGSYS', 'SIGIO', 'SIGPWR', 'SIGSTKFLT', 'SIGPROF', 'SIGQUIT', 'SIGUSR2']
  /** Appends "A start", and on `signal` appends "A end" and dies by it. Prints its PID, then ready. */
  const commandA = [
    "const fs = require('fs'); const [log, sig] = process.argv.slice(1)",
    "fs.appendFileSync(log, 'A start\\n')",
    "process.on(sig, () => { fs.appendFileSync(log, 'A end\\n'); process.removeAllListeners(sig); process.kill(process.pid, sig) })",
    'console.log(process.pid); console.log("ready"); setInterval(() => {}, 1000)',
  ].join('\n')

  /** One race: A holds the lock and runs commandA; B waits for the lock; `signal` goes to A's wrapper. */
  async function race(signal: string) {
    const log = join(dir, `${signal}.log`)
    const path = join(dir, `${signal}.pid`)
    // No core files from the signals that dump core (ABRT, QUIT, TRAP, SYS, XCPU, XFSZ).
    const noCore = (args: string[]) => {
      const c = startCommand('sh', ['-c', 'ulimit -c 0; exec "$@"', 'sh', process.execPath, bin, ...args], { cwd: dir })
      children.push(c)
      return c
    }
    const a = noCore(['run', '--lock', path, '--', process.execPath, '-e', commandA, log, signal])
    await a.waitFor('ready')
    orphans.push(processStarted(Number(a.stdout().split('\n')[0])))
    const b = noCore(['run', '--lock', path, '--wait', 'inf', '--', 'sh', '-c', 'echo B start >> "$0"', log])
    await waiting(path, 60_000)
    a.child.kill(signal as NodeJS.Signals)
    // B first: without the fix A's command never ends, so A's pipes never close.
    const bEnd = await b.done
    // The marker: B's command started only after A's had ended.
    const marker = readFileSync(log, 'utf8')
    // The wrapper's 'exit', not 'close': without the fix, A's command lives on and holds the pipes.
    const { exitCode, signalCode } = a.child
    const aEnd = exitCode !== null || signalCode !== null ? [exitCode, signalCode] : await new Promise((r) => a.child.once('exit', (...end) => r(end)))
    // B's stderr: empty, unless it took A's lock over ("took over …"), which would say how it got in.
    return { b: [bEnd.code, bEnd.signal], bStderr: bEnd.stderr, marker, a: aEnd, lockLeft: existsSync(path) }
  }

  // Node emits SIGABRT under the name SIGIOT as well (SIGIO as SIGPOLL), and signal-exit listens
  // under both: the exit hooks released the lock on SIGIOT while the command still ran. Seen as
  // the race above failing under load (B started before A's command had ended).
  for (const { signal, other } of SIGNALS_WITH_TWO_NAMES) {
    it(`${signal}, a signal with two names: the lock stays until the command, busy when it came, has ended`, async () => {
      const flag = join(dir, 'go-on')
      // Says ready and blocks its event loop in the same turn, until the flag exists: the
      // forwarded signal, whenever it comes, can be handled only after that.
      const busy = [
        "const fs = require('fs'); const [flag, sig] = process.argv.slice(1)",
        'process.on(sig, () => { process.removeAllListeners(sig); process.kill(process.pid, sig) })',
        'console.log("ready")',
        'while (!fs.existsSync(flag)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)',
        'setInterval(() => {}, 1000)',
      ].join('\n')
      const run = start(['run', '--lock', lock, '--', process.execPath, '-e', busy, flag, signal], { NODE_DEBUG: 'exitguard' })
      await run.waitFor('ready')
      run.child.kill(signal)
      // The wrapper's exit hooks have seen the signal under its other name and are done with it
      // (debuglog's lines): they stood aside, or (the defect) released and re-raised it.
      expect(await eventually(() => run.stderr().includes(`signal ${other}: the app listens for it under another name; standing aside`) || run.stderr().includes(`re-raising ${other}`))).toBe(true)
      const heldWhileBusy = existsSync(lock)
      writeFileSync(flag, '')
      const end = await run.done
      expect({ heldWhileBusy, signal: end.signal, lockLeft: existsSync(lock) }).toEqual({ heldWhileBusy: true, signal, lockLeft: false })
    })
  }

  it.runIf(process.platform === 'linux')('docs/cli.md lists the signals the code forwards, and the tested ones are among them', () => {
    const doc = readFileSync(join(root, 'docs/cli.md'), 'utf8')
    const listed = /^`(SIGHUP [A-Z0-9 ]+)`$/m.exec(doc)?.[1]?.split(' ')
    expect(listed).toEqual(forwardedSignals())
    expect(forwardedSignals()).toEqual(expect.arrayContaining(signals))
    // Profiling the wrapper: V8's sampler ticks must not reach the command.
    expect(forwardedSignals(osConstants.signals, ['--cpu-prof'])).not.toContain('SIGPROF')
  })

  it(`each of ${signals.join(', ')}: forwarded; the wrapper dies by it after the command; a waiting run starts only after`, async () => {
    const tested = signals.filter((s) => s in osConstants.signals)
    // Three at a time, each with its own lock: they are independent, and one by one they take a minute.
    const results: Awaited<ReturnType<typeof race>>[] = []
    for (let i = 0; i < tested.length; i += 3) results.push(...(await Promise.all(tested.slice(i, i + 3).map(race))))
    const expected = tested.map((signal) => ({ b: [0, null], bStderr: '', marker: 'A start\nA end\nB start\n', a: [null, signal], lockLeft: false }))
    expect(Object.fromEntries(tested.map((s, i) => [s, results[i]]))).toEqual(Object.fromEntries(tested.map((s, i) => [s, expected[i]])))
  }, 120_000)
})

describe('exitguard status', () => {
  it('free: 0', async () => {
    expect(await exitguard(['status', lock])).toMatchObject({ code: 0, stdout: `free: ${lock} is not held\n` })
    const json = await exitguard(['status', lock, '--json'])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual({ path: lock, state: 'free', owner: null, reason: null, foreign: false, fileOwner: null, untrusted: null })
  })

  it('held: 1, naming the holder', async () => {
    const run = start(['run', '--lock', lock, '--', ...sleeper])
    await run.waitFor('ready')
    const r = await exitguard(['status', 'job.pid']) // relative to the cwd
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(new RegExp(`^held: ${lock} is held by PID ${run.pid} \\(exitguard run -- sh -c .*\\) on host ${hostname()} since .*\\(PID ${run.pid} is running\\)\\n$`))
    const json = JSON.parse((await exitguard(['status', lock, '--json'])).stdout)
    expect(json).toMatchObject({ path: lock, state: 'held', reason: `PID ${run.pid} is running`, foreign: false })
    expect(json.owner).toMatchObject({ pid: run.pid, hostname: hostname(), command: 'exitguard run -- sh -c echo $$; echo ready; exec sleep 60' })
  })

  it("stale: 2, for a dead PID's file", async () => {
    const pid = await deadPid()
    writeFileSync(lock, `${pid}\n`)
    const r = await exitguard(['status', lock, '--json'])
    expect(r.code).toBe(2)
    expect(JSON.parse(r.stdout)).toMatchObject({ state: 'stale', owner: { pid }, reason: `no process has PID ${pid}` })
    expect(existsSync(lock)).toBe(true) // status changes nothing
  })

  it('an unreadable lock file: held, then stale, described as run describes it (never "PID 0")', async () => {
    writeFileSync(lock, 'not a record')
    const held = await exitguard(['status', lock])
    expect(held).toMatchObject({
      code: 1,
      stdout: expect.stringMatching(
        new RegExp(`^held: ${lock} holds no valid record \\(empty or unreadable, last written \\d{4}-.*\\); it counts as stale once it is 5000 ms old; if no process uses it, remove it\n$`),
      ),
    })
    const run = await exitguard(['run', '--lock', lock, '--', 'true'])
    expect(run).toMatchObject({ code: 75, stderr: expect.stringContaining(`The lock file ${lock} holds no valid record (empty or unreadable, last written `) })
    const old = new Date(Date.now() - 60_000)
    utimesSync(lock, old, old)
    const stale = await exitguard(['status', lock])
    expect(stale).toMatchObject({ code: 2, stdout: `stale: ${lock} holds no valid record (empty or unreadable, last written ${old.toISOString()}); the next run takes it over\n` })
    expect(held.stdout + stale.stdout).not.toContain('PID 0')
  })

  it('a path that cannot be a lock file: 66', async () => {
    const r = await exitguard(['status', dir])
    expect(r.code).toBe(66)
    expect(r.stderr).toContain('is a directory')
  })
})

describe('exitguard reap', () => {
  it('--dry-run lists, the real run removes; text and --json', async () => {
    const killed = startNode(join(fixtures, 'temp-hold.mjs'), [dir, 'job-', '1'])
    children.push(killed)
    await killed.waitFor('ready')
    killed.child.kill('SIGKILL')
    await killed.done
    const leftovers = readdirSync(dir).sort()
    expect(leftovers).toHaveLength(2)

    const dry = await exitguard(['reap', dir, '--dry-run', '--json'])
    expect(dry.code).toBe(0)
    const report = JSON.parse(dry.stdout)
    expect(report).toMatchObject({ dir, dryRun: true })
    expect(report.entries.map((e: { path: string }) => e.path).sort()).toEqual(leftovers.map((n) => join(dir, n)))
    expect(readdirSync(dir).sort()).toEqual(leftovers)

    const dryText = await exitguard(['reap', dir, '-n', '--prefix', 'job-'])
    expect(dryText.stdout.trimEnd().split('\n').sort()).toEqual(report.entries.map((e: { path: string; kind: string }) => `would remove ${e.kind} ${e.path} (no process has PID ${killed.pid})`).sort())
    expect((await exitguard(['reap', dir, '--prefix', 'other-'])).stdout).toBe(`nothing to reap in ${dir}\n`)

    const real = await exitguard(['reap', dir])
    expect(real.code).toBe(0)
    expect(real.stdout).toMatch(/^removed (file|dir) /)
    expect(readdirSync(dir)).toEqual([])
    expect(await exitguard(['reap', dir, '--json'])).toMatchObject({ code: 0, stdout: JSON.stringify({ dir, dryRun: false, entries: [] }) + '\n' })
  })

  it('a directory that does not exist: 66', async () => {
    // In words, not "ENOENT: no such file or directory, lstat '…'".
    expect(await exitguard(['reap', join(dir, 'nope')])).toMatchObject({ code: 66, stderr: `exitguard: Could not reap ${join(dir, 'nope')}: the directory does not exist.\n` })
    writeFileSync(join(dir, 'a-file'), '')
    expect(await exitguard(['reap', join(dir, 'a-file')])).toMatchObject({ code: 66, stderr: `exitguard: Could not reap ${join(dir, 'a-file')}: it is not a directory.\n` })
  })
})

describe('the package bin', () => {
  it('package.json names dist/exitguard.cjs, which starts with a shebang and is executable', () => {
    expect(pkg.bin).toEqual({ exitguard: './dist/exitguard.cjs' })
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true)
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' })).toBe(`${pkg.version}\n`)
  })

  it('npm pack ships the bin', () => {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as [
      { files: { path: string }[] },
    ]
    expect(packed.files.map((f) => f.path)).toContain('dist/exitguard.cjs')
  })

  it('installed into a project, `npx --no-install exitguard` and node_modules/.bin/exitguard run it', async () => {
    const project = join(dir, 'project')
    // The packed tarball unpacked as node_modules/exitguard, its dependencies linked from this
    // clone (`npm install --offline` would need registry metadata that `npm ci` never caches);
    // then npm links its bin into node_modules/.bin as an install does (`npm rebuild` reads only
    // what is in node_modules).
    makeConsumer(project, { tarball: pack(dir), type: 'commonjs', nodeTypes: false })
    execFileSync('npm', ['rebuild', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: project, stdio: 'ignore' })
    expect(readlinkSync(join(project, 'node_modules/.bin/exitguard'))).toBe('../exitguard/dist/exitguard.cjs')
    const viaNpx = await startCommand('npx', ['--no-install', 'exitguard', 'run', '--lock', join(dir, 'npx.pid'), '--', 'sh', '-c', 'exit 7'], { cwd: project }).done
    expect(viaNpx.code).toBe(7)
    const viaBin = await startCommand(join(project, 'node_modules/.bin/exitguard'), ['--version'], { cwd: project }).done
    expect(viaBin).toMatchObject({ code: 0, stdout: `${pkg.version}\n` })
  })
})

const pgUrl = process.env.EXITGUARD_PG_URL
describe.skipIf(!pgUrl)('exitguard run --lock postgres://', () => {
  const url = (key: string) => `${pgUrl}?key=${key}`

  it('one holder at a time; the second gets 75 naming the first; released when the command ends', async () => {
    const key = `cli-${process.pid}-${Date.now()}`
    const first = start(['run', '--lock', url(key), '--', ...sleeper])
    await first.waitFor('ready')
    const second = await exitguard(['run', '--lock', url(key), '--', 'sh', '-c', 'echo should not run'])
    expect(second.code).toBe(75)
    expect(second.stdout).toBe('')
    expect(second.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(second.stderr).toContain(`PID ${first.pid}`)

    first.child.kill('SIGINT')
    expect(await first.done).toMatchObject({ signal: 'SIGINT' })
    const third = await exitguard(['run', '--lock', url(key), '--wait', '10000', '--', 'sh', '-c', 'exit 5'])
    expect(third.code).toBe(5)
  })

  it('an unreachable server: 69', async () => {
    const port = pgUrl!.match(/:(\d+)\//)![1]
    const r = await exitguard(['run', '--lock', url('x').replace(`:${port}/`, ':1/'), '--', 'true'])
    expect(r.code).toBe(69)
    expect(r.stderr).toMatch(/^exitguard: /)
  })
})
