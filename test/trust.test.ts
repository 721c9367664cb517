// The trust rule (docs/threat-model.md): a second local user (uid 65534) plants lock records in a
// shared sticky directory, as anyone can in /tmp, and tries to make exitguard, run as root or as
// another normal user (uid 65533), signal a stranger, delete a socket or talk to the wrong process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { basename, dirname, join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { acquirePidLockSync, messageHolder, readPidLock, reapPidLock, signalHolder, stopHolder } from '../src/index.js'
import { readStartTime } from '../src/owner/start-time.js'
import { selfIdentity } from '../src/owner/self.js'
import { NOBODY, nobodyCopy } from './helpers/as-nobody.js'
import { deadPid, fixtures, makeTempDir, root, startCommand, startNode, type RunningChild } from './helpers/child.js'
import { eventually, running } from './helpers/keepers.js'

const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p))
const reason = process.platform !== 'linux' ? 'Linux only' : process.getuid?.() !== 0 ? 'needs root, to act as uids 65534 and 65533' : !setpriv ? 'no setpriv (util-linux)' : null
if (reason) console.warn(`exitguard: SKIPPING the trust-rule tests: ${reason}`)

/** The other normal user: a victim's owner, who also runs exitguard against the attacker's file. */
const OTHER = { uid: 65533, gid: 65533 } as const
const as = (user: { uid: number; gid: number }) => [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups']
const bin = join(root, 'dist/exitguard.cjs')

let tmp: ReturnType<typeof makeTempDir>
/** Sticky and world-writable, as /tmp: where a lock file is most often put. */
let shared: string
const started: ChildProcess[] = []
const children: RunningChild[] = []
let copy: ReturnType<typeof nobodyCopy> | null = null

beforeAll(() => {
  if (!reason) copy = nobodyCopy()
})
afterAll(() => {
  if (copy && copy.skip === undefined) copy.cleanup()
})
beforeEach(() => {
  tmp = makeTempDir('exitguard-trust-')
  chmodSync(tmp.dir, 0o755)
  shared = join(tmp.dir, 'shared')
  mkdirSync(shared)
  chmodSync(shared, 0o1777)
})
afterEach(async () => {
  for (const c of started.splice(0)) c.kill('SIGKILL')
  for (const c of children.splice(0)) {
    c.child.kill('SIGKILL')
    await c.done
  }
  tmp.cleanup()
})

/** A process of `user` (root by default) that just runs: the one a planted record names. */
async function victim(user?: { uid: number; gid: number }): Promise<number> {
  const child = user ? spawn(setpriv!, [...as(user), 'sleep', '120'], { stdio: 'ignore' }) : spawn('sleep', ['120'], { stdio: 'ignore' })
  started.push(child)
  const pid = child.pid!
  // Once it is sleep (setpriv has exec'd it as the user), its start time and uid are final.
  expect(await eventually(() => readFileSync(`/proc/${pid}/comm`, 'latin1') === 'sleep\n')).toBe(true)
  return pid
}

/**
 * A version 1 record for the lock `path` naming `pid` with its true start time, as anyone can
 * read it from /proc, and the location exitguard would write (the directory's dev:ino is public too).
 */
function record(path: string, pid: number, extra: Record<string, unknown> = {}): string {
  const me = selfIdentity()
  const dir = statSync(dirname(path))
  const location = { dir: `${dir.dev}:${dir.ino}`, name: basename(path) }
  const owner = {
    pid,
    hostname: me.hostname,
    startTime: readStartTime(pid),
    bootId: me.bootId,
    pidNamespace: me.pidNamespace,
    createdAt: new Date().toISOString(),
    command: 'sleep 120',
    data: null,
    token: 'planted0000000000000000000000000',
    location,
    ...extra,
  }
  return `${pid}\n{"exitguard":1,${JSON.stringify(owner).slice(1)}\n`
}

/** Writes `body` at `path` as `user` (the attacker, uid 65534, unless told): the file is theirs. */
function plant(path: string, body: string, user: { uid: number; gid: number } = NOBODY): void {
  const r = spawnSync(setpriv!, [...as(user), '/bin/sh', '-c', 'printf %s "$1" > "$2"', 'sh', body, path], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`could not plant ${path} as uid ${user.uid}: ${r.stderr}`)
  expect(lstatSync(path).uid).toBe(user.uid)
}

/** The CLI as root, or as `user` from the world-readable copy. */
function cli(args: string[], user?: { uid: number; gid: number }): { code: number | null; stdout: string; stderr: string } {
  const r = user
    ? spawnSync(setpriv!, [...as(user), process.execPath, join(copyRoot(), 'dist/exitguard.cjs'), ...args], { cwd: '/', encoding: 'utf8', timeout: 30_000 })
    : spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

function copyRoot(): string {
  if (!copy || copy.skip !== undefined) throw new Error(`no world-readable copy: ${copy?.skip}`)
  return copy.root
}

describe.skipIf(reason !== null)('a planted record never makes exitguard signal a stranger', () => {
  it("uid 65534's file naming a root process: status --lsb is 4 (unknown), stop and the library refuse with EUNTRUSTED; it lives", async () => {
    const pid = await victim()
    const path = join(shared, 'app.pid')
    plant(path, record(path, pid))
    const status = readPidLock(path)
    expect(status).toMatchObject({ state: 'held', fileOwner: 65534, listening: false, untrusted: expect.stringContaining(`belongs to uid 65534, but PID ${pid} runs as uid 0`) })
    expect(cli(['status', '--lsb', path])).toMatchObject({ code: 4, stdout: expect.stringContaining('not trusted') })
    expect(cli(['status', path]).stdout).toContain('not trusted')
    const stop = cli(['stop', path, '--kill', '--timeout', '200'])
    expect(stop).toMatchObject({ code: 4, stderr: expect.stringContaining(`Won't signal PID ${pid}`) })
    expect(() => signalHolder(path, 'SIGTERM')).toThrow(expect.objectContaining({ code: 'EUNTRUSTED', path }))
    await expect(stopHolder(path, { kill: true, timeout: 200 })).rejects.toMatchObject({ code: 'EUNTRUSTED' })
    // A second instance is told the lock is held, but never to kill the PID the record names.
    expect(() => acquirePidLockSync(path)).toThrow(expect.objectContaining({ code: 'ELOCKED', message: expect.not.stringContaining(`kill ${pid}`) }))
    expect(running(pid)).toBe(true)
  })

  it('against a normal user: their own stop (uid 65533) refuses a record of uid 65534 naming their process', async () => {
    const pid = await victim(OTHER)
    expect(readFileSync(`/proc/${pid}/status`, 'latin1')).toMatch(/^Uid:\s+65533\s/m)
    const path = join(shared, 'job.pid')
    plant(path, record(path, pid))
    // The kernel would let uid 65533 signal its own process: only the rule stops it.
    expect(cli(['stop', path, '--timeout', '200'], OTHER)).toMatchObject({ code: 4, stderr: expect.stringContaining('belongs to uid 65534') })
    expect(cli(['status', '--lsb', path], OTHER).code).toBe(4)
    expect(running(pid)).toBe(true)
  })

  it("a record written by the process's own user is trusted: root stops the job of uid 65533 from its own file", async () => {
    const pid = await victim(OTHER)
    const path = join(shared, 'job.pid')
    plant(path, record(path, pid), OTHER)
    expect(readPidLock(path)).toMatchObject({ state: 'held', fileOwner: 65533, untrusted: null })
    expect(cli(['status', '--lsb', path]).code).toBe(0)
    expect(cli(['stop', path, '--timeout', '10000'])).toMatchObject({ code: 0, stdout: expect.stringContaining('stopped') })
    expect(await eventually(() => !running(pid))).toBe(true)
  })

  it("a directory others can write without the sticky bit: even root's own record is not trusted", async () => {
    const pid = await victim()
    const open = join(tmp.dir, 'open')
    mkdirSync(open)
    chmodSync(open, 0o777) // uid 65534 may rename any file there over app.pid
    const path = join(open, 'app.pid')
    acquirePidLockSync(join(open, 'probe.pid')).release() // a real lock works there...
    spawnSync('/bin/sh', ['-c', 'printf %s "$1" > "$2"', 'sh', record(path, pid), path])
    // ...but what its file says can't be acted on: someone else may have put it there.
    expect(readPidLock(path).untrusted).toContain('no sticky bit')
    expect(() => signalHolder(path, 'SIGTERM')).toThrow(expect.objectContaining({ code: 'EUNTRUSTED' }))
    expect(running(pid)).toBe(true)
  })
})

describe.skipIf(reason !== null)("root's own records, moved, linked or reached through another user's path", () => {
  /** A root process holding a real PID lock at `path`. */
  async function rootHolder(path: string): Promise<RunningChild> {
    const holder = startNode(join(fixtures, 'pid-lock.mjs'), ['hold', path])
    children.push(holder)
    await holder.waitFor('ready')
    return holder
  }

  it('a live root record moved by uid 65534 out of a directory handed to it: not trusted where it lands; the holder lives', async () => {
    const handed = join(shared, 'handed')
    mkdirSync(handed)
    chownSync(handed, 65534, 65534)
    const holder = await rootHolder(join(handed, 'job.pid'))
    const moved = join(shared, 'svc.pid')
    expect(spawnSync(setpriv!, [...as(NOBODY), 'mv', join(handed, 'job.pid'), moved]).status).toBe(0)
    expect(lstatSync(moved).uid).toBe(0) // root's file, root's true record
    expect(readPidLock(moved).untrusted).toContain('was written for another lock (job.pid')
    expect(cli(['status', '--lsb', moved]).code).toBe(4)
    expect(cli(['stop', moved, '--timeout', '200'])).toMatchObject({ code: 4, stderr: expect.stringContaining('moved or linked here') })
    expect(running(holder.pid)).toBe(true)
  })

  it('a root-owned lock file others can write (made by another tool) is not trusted', async () => {
    const pid = await victim()
    const path = join(shared, 'ww.pid')
    spawnSync('/bin/sh', ['-c', 'printf %s "$1" > "$2" && chmod 666 "$2"', 'sh', record(path, pid), path])
    expect(readPidLock(path).untrusted).toContain('writable by others (mode 666)')
    expect(() => signalHolder(path, 'SIGTERM')).toThrow(expect.objectContaining({ code: 'EUNTRUSTED' }))
    expect(running(pid)).toBe(true)
  })

  it("a lock path through uid 65534's directory and symlink to root's real lock: not trusted; root's daemon lives", async () => {
    const real = join(tmp.dir, 'run')
    mkdirSync(join(real, 'svc'), { recursive: true })
    const holder = await rootHolder(join(real, 'svc', 'app.pid'))
    const theirs = join(shared, 'b')
    expect(spawnSync(setpriv!, [...as(NOBODY), '/bin/sh', '-c', 'mkdir "$1" && ln -s "$2" "$1/run"', 'sh', theirs, real]).status).toBe(0)
    const via = join(theirs, 'run', 'svc', 'app.pid')
    expect(readPidLock(via)).toMatchObject({ state: 'held', untrusted: expect.stringContaining('belongs to uid 65534, who can change what the path leads to') })
    expect(cli(['stop', via, '--timeout', '200']).code).toBe(4)
    expect(running(holder.pid)).toBe(true)
    // By its own path, the same record is root's and trusted.
    expect(readPidLock(join(real, 'svc', 'app.pid')).untrusted).toBeNull()
  })

  it("a planted <lock>.readers symlink into a root-only directory: root's exclusive acquire writes and deletes nothing there", () => {
    const victimDir = join(tmp.dir, 'root-only-readers')
    mkdirSync(victimDir, { mode: 0o700 })
    const victimFile = join(victimDir, '0123456789abcdef0123456789abcdef') // named like a reader's record
    writeFileSync(victimFile, 'root data\n')
    const old = new Date(Date.now() - 60_000) // "garbage older than the grace": dead, were it a record
    utimesSync(victimFile, old, old)
    const lock = join(shared, 'app.lock')
    expect(spawnSync(setpriv!, [...as(NOBODY), 'ln', '-s', victimDir, `${lock}.readers`]).status).toBe(0)
    acquirePidLockSync(lock).release()
    expect(readFileSync(victimFile, 'utf8')).toBe('root data\n')
    expect(readdirSync(victimDir)).toEqual(['0123456789abcdef0123456789abcdef'])
    // And a shared acquire refuses to use it at all.
    expect(() => acquirePidLockSync(lock, { shared: true })).toThrow(expect.objectContaining({ code: 'EUNSAFE' }))
  })

  it("a record's control characters never reach the terminal: escapes are shown as \\xNN", async () => {
    const pid = await victim()
    const path = join(shared, 'esc.pid')
    plant(path, record(path, pid, { command: 'x\r\u001b[2K\u001b[1Arunning: all fine\u001b]0;owned\u0007' }))
    const out = cli(['status', path]).stdout
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may be printed
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/) // only the newline at the end
    expect(out).toContain('\\x1b[2K')
  })
})

describe.skipIf(reason !== null)("a planted record never makes exitguard remove or reach a socket that is not its writer's", () => {
  /** A root holder listening for messages, its socket in a private directory of root's. */
  async function rootHolder(): Promise<{ path: string; socket: string; token: string }> {
    const path = join(tmp.dir, 'holder.pid')
    const socketDir = join(tmp.dir, 'sockets')
    const holder = startNode(join(fixtures, 'messaging.mjs'), ['hold', path, JSON.stringify({ messaging: { socketDir } })])
    children.push(holder)
    await holder.waitFor('ready')
    const { owner } = readPidLock(path)
    return { path, socket: owner!.socket!, token: owner!.token }
  }

  it("taking over or reaping a planted stale record leaves root's live socket, and a socket behind a symlinked directory, alone", async () => {
    const live = await rootHolder()
    // Behind a symlink the attacker made: root's private directory, holding a socket of root's.
    const hidden = join(tmp.dir, 'root-only')
    mkdirSync(join(hidden, 'sub'), { recursive: true, mode: 0o700 })
    chmodSync(hidden, 0o700)
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen(join(hidden, 'sub', 'hidden0000000000000000000000000.sock'), resolve))
    try {
      const link = join(shared, 'link')
      expect(spawnSync(setpriv!, [...as(NOBODY), 'ln', '-s', hidden, link]).status).toBe(0)
      const dead = await deadPid()
      const plants = [
        { lock: join(shared, 'a.pid'), token: live.token, socket: live.socket, victim: live.socket },
        {
          lock: join(shared, 'b.pid'),
          token: 'hidden0000000000000000000000000',
          socket: join(link, 'sub', 'hidden0000000000000000000000000.sock'),
          victim: join(hidden, 'sub', 'hidden0000000000000000000000000.sock'),
        },
      ]
      for (const p of plants) {
        plant(p.lock, record(p.lock, dead, { token: p.token, socket: p.socket, startTime: '1' }))
        expect(readPidLock(p.lock).state).toBe('stale')
      }
      acquirePidLockSync(plants[0]!.lock).release() // a takeover
      expect(reapPidLock(plants[1]!.lock)).toBe(true) // a reap
      for (const p of plants) expect(lstatSync(p.victim).isSocket()).toBe(true)
      await expect(messageHolder(live.path, { echo: 'still here' })).resolves.toMatchObject({ echo: 'still here' })
    } finally {
      server.close()
    }
  })

  it("root's messageHolder never talks to a socket a record of another user names: EUNTRUSTED, nothing sent", async () => {
    // The attacker's own listener: anything it receives it prints, and it replies with a forgery.
    const theirs = join(shared, 'theirs')
    const listener = startCommand(
      setpriv!,
      [
        ...as(NOBODY),
        process.execPath,
        '-e',
        `
      const net = require('node:net'), fs = require('node:fs')
      fs.mkdirSync(process.argv[1], { mode: 0o700 })
      net.createServer((s) => s.on('data', (d) => { console.log('GOT ' + d.toString().slice(4)); const r = Buffer.from('{"ok":true,"reply":"forged"}'); const h = Buffer.alloc(4); h.writeUInt32BE(r.length); s.end(Buffer.concat([h, r])) }))
        .listen(process.argv[1] + '/planted0000000000000000000000000.sock', () => console.log('ready'))`,
        theirs,
      ],
      { cwd: '/' },
    )
    children.push(listener)
    await listener.waitFor('ready')
    const socket = join(theirs, 'planted0000000000000000000000000.sock')
    // 1. The record names a root process as the holder, and the attacker's socket.
    const path = join(shared, 'app.pid')
    plant(path, record(path, await victim(), { socket }))
    expect(readPidLock(path).listening).toBe(false)
    await expect(messageHolder(path, { secret: 'root-token' }, { timeout: 2000 })).rejects.toMatchObject({ code: 'EUNTRUSTED' })
    // 2. The attacker holds the lock path itself (its own process, its own socket): a real
    //    holder, but not one root asked to talk to.
    const own = join(shared, 'own.pid')
    plant(own, record(own, listener.pid, { socket }))
    expect(readPidLock(own)).toMatchObject({ state: 'held', untrusted: null, listening: true })
    await expect(messageHolder(own, { secret: 'root-token' }, { timeout: 2000 })).rejects.toMatchObject({ code: 'EUNTRUSTED', message: expect.stringContaining('holderUid: 65534') })
    expect(cli(['send', own, '{"secret":"root-token"}'])).toMatchObject({ code: 77 })
    expect(listener.stdout()).not.toContain('GOT')
    // Asked for by name, it is reached (and what it says is its own business).
    await expect(messageHolder(own, { hello: 1 }, { holderUid: 65534, timeout: 5000 })).resolves.toBe('forged')
    expect(await eventually(() => listener.stdout().includes('GOT'))).toBe(true)
  })
})
