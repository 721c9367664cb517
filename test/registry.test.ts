import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { onExit, unregister, registered, configure, ExitguardError } from '../src/index.js'
import { fixtures, makeTempDir, root, runNode, SIGNALS_WITH_TWO_NAMES, startNode } from './helpers/child.js'

let tmp: ReturnType<typeof makeTempDir>
let log: string
beforeEach(() => {
  tmp = makeTempDir()
  log = join(tmp.dir, 'log')
})
afterEach(() => tmp.cleanup())

const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [])
const exitPath = join(fixtures, 'exit-path.mjs')

describe('exit-path matrix: handlers run LIFO, a throwing one does not stop the rest, the process ends as it would have', () => {
  const cases: { mode: string; code: number | null; signal: NodeJS.Signals | null; first?: string }[] = [
    { mode: 'natural', code: 0, signal: null, first: 'work-done' },
    { mode: 'exit0', code: 0, signal: null },
    { mode: 'exit3', code: 3, signal: null },
    { mode: 'exitCode', code: 5, signal: null },
    { mode: 'uncaught', code: 1, signal: null },
    { mode: 'rejection', code: 1, signal: null },
  ]
  for (const c of cases) {
    it(`${c.mode}: exits with code ${c.code}`, async () => {
      const r = await runNode(exitPath, [log, c.mode])
      expect({ code: r.code, signal: r.signal }).toEqual({ code: c.code, signal: c.signal })
      expect(lines()).toEqual([...(c.first ? [c.first] : []), 'C', 'B', 'A'])
      expect(r.stderr).toContain('exit handler "throwingB" failed')
      expect(r.stderr).toContain('boom from B')
    })
  }

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${signal}: handlers run, then the process dies by ${signal}`, async () => {
      const child = startNode(exitPath, [log, 'signal'])
      await child.waitFor('ready')
      child.child.kill(signal)
      const r = await child.done
      expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal })
      expect(lines()).toEqual(['C', 'B', 'A'])
      expect(r.stderr).toContain('boom from B')
    })
  }
})

describe('async handlers', () => {
  it('are awaited on a signal, in LIFO order with the sync ones', async () => {
    const child = startNode(exitPath, [log, 'signal', 'async'])
    await child.waitFor('ready')
    child.child.kill('SIGTERM')
    const r = await child.done
    expect(r.signal).toBe('SIGTERM')
    expect(lines()).toEqual(['C', 'async-done', 'B', 'A'])
  })

  it('are awaited at natural end', async () => {
    const r = await runNode(exitPath, [log, 'natural', 'async'])
    expect(r.code).toBe(0)
    expect(lines()).toEqual(['work-done', 'C', 'async-done', 'B', 'A'])
  })

  it('are awaited by gracefulExit(code), which exits with that code', async () => {
    const r = await runNode(exitPath, [log, 'graceful', 'async'])
    expect(r.code).toBe(4)
    expect(lines()).toEqual(['C', 'async-done', 'B', 'A'])
  })

  it('that hang at natural end are cut off by asyncTimeout, and the process still ends', async () => {
    const r = await runNode(exitPath, [log, 'natural', 'hang', 'timeout=200'])
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null })
    expect(lines()).toEqual(['work-done', 'C', 'B', 'A'])
    expect(r.stderr).toMatch(/"hangs" did not finish on natural end: the 200 ms asyncTimeout ran out/)
  })

  it('wait at natural end for work that another beforeExit listener schedules', async () => {
    const r = await runNode(exitPath, [log, 'natural', 'more-work'])
    expect(r.code).toBe(0)
    expect(lines()).toEqual(['work-done', 'more-work', 'C', 'B', 'A'])
  })

  it('may call gracefulExit(code) themselves: no stall, the code is kept', async () => {
    const r = await runNode(exitPath, [log, 'natural', 'graceful-in-handler', 'timeout=20000'])
    expect(r.code).toBe(9)
    expect(lines()).toEqual(['work-done', 'graceful-returned', 'C', 'B', 'A'])
    expect(r.stderr).not.toMatch(/did not finish/)
  })

  it('are reported as skipped on process.exit(), and the sync ones still run', async () => {
    const r = await runNode(exitPath, [log, 'exit3', 'async'])
    expect(r.code).toBe(3)
    expect(lines()).toEqual(['C', 'B', 'A'])
    expect(r.stderr).toMatch(/async exit handler "slowAsync" skipped/)
  })

  it('are reported as skipped on an uncaught exception', async () => {
    const r = await runNode(exitPath, [log, 'uncaught', 'async'])
    expect(r.code).toBe(1)
    expect(lines()).toEqual(['C', 'B', 'A'])
    expect(r.stderr).toMatch(/async exit handler "slowAsync" skipped/)
  })

  it('that hang are cut off by asyncTimeout; the sync handlers still run and the signal is kept', async () => {
    const child = startNode(exitPath, [log, 'signal', 'hang', 'timeout=200'])
    await child.waitFor('ready')
    child.child.kill('SIGTERM')
    const r = await child.done
    expect(r.signal).toBe('SIGTERM')
    expect(lines()).toEqual(['C', 'B', 'A'])
    expect(r.stderr).toMatch(/exit handler "hangs" did not finish on signal SIGTERM: the 200 ms asyncTimeout ran out/)
  })

  it('are skipped by a second SIGINT; the sync handlers still run and the process dies by SIGINT', async () => {
    const child = startNode(exitPath, [log, 'signal', 'hang', 'timeout=600000'])
    await child.waitFor('ready')
    child.child.kill('SIGINT')
    await child.waitFor('cleanup-started')
    child.child.kill('SIGINT')
    const r = await child.done
    expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal: 'SIGINT' })
    expect(lines()).toEqual(['C', 'B', 'A'])
    expect(r.stderr).toMatch(/"hangs" did not finish on signal SIGINT: a second signal \(SIGINT\) arrived/)
  })
})

describe('other listeners and other processes', () => {
  it('stands aside when the app has its own SIGINT listener, and runs when the app exits', async () => {
    const child = startNode(exitPath, [log, 'signal', 'own-sigint'])
    await child.waitFor('ready')
    child.child.kill('SIGINT')
    const r = await child.done
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 7, signal: null })
    expect(lines()).toEqual(['app-listener', 'C', 'B', 'A'])
  })

  // Node emits SIGABRT under the name SIGIOT too (SIGIO as SIGPOLL), and signal-exit listens under
  // both: the app's SIGABRT listener must make it stand aside for SIGIOT as well.
  for (const { signal } of SIGNALS_WITH_TWO_NAMES) {
    it(`stands aside when the app listens for ${signal}, a signal with another name`, async () => {
      const child = startNode(exitPath, [log, 'signal', `own=${signal}`])
      await child.waitFor('ready')
      child.child.kill(signal)
      const r = await child.done
      expect({ code: r.code, signal: r.signal }).toEqual({ code: 7, signal: null })
      expect(lines()).toEqual(['app-listener', 'C', 'B', 'A'])
    })
  }

  for (const { signal } of SIGNALS_WITH_TWO_NAMES) {
    it(`with signal-exit v3 loaded, ${signal} under its other name is no second signal: async cleanup finishes`, async () => {
      const child = startNode(join(fixtures, 'alias-in-cleanup.mjs'), [tmp.dir])
      await child.waitFor('ready')
      child.child.kill(signal)
      const r = await child.done
      expect({ signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({ signal, stdout: 'ready\nasync end\n', stderr: '' })
    })
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`with signal-exit v3 loaded (plain proper-lockfile) and the loop emptied by cleanup, still dies by ${signal}`, async () => {
      const resource = join(tmp.dir, 'resource')
      const child = startNode(join(fixtures, 'v3-coexist.mjs'), [log, resource])
      await child.waitFor('ready')
      expect(existsSync(`${resource}.lock`)).toBe(true)
      child.child.kill(signal)
      const r = await child.done
      expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal })
      expect(lines()).toEqual(['closed'])
      expect(existsSync(`${resource}.lock`)).toBe(false) // proper-lockfile's own (v3) cleanup ran too
    })
  }

  // Issue 9 #17: the re-raised signal used to reach the handler's listener, and the process exited 0.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`a handler that listens for ${signal} during cleanup does not change the end: the process still dies by ${signal}`, async () => {
      const child = startNode(exitPath, [log, 'signal', 'listener-in-handler'])
      await child.waitFor('ready')
      child.child.kill(signal)
      const r = await child.done
      expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal })
      expect(lines()).toEqual(['adds-listeners', 'C', 'B', 'A'])
    })
  }

  it('the same, with signal-exit v3 loaded: its cleanup runs, the late listener never does, and the process dies by SIGINT', async () => {
    const resource = join(tmp.dir, 'resource')
    const child = startNode(join(fixtures, 'v3-coexist.mjs'), [log, resource, 'listener'])
    await child.waitFor('ready')
    child.child.kill('SIGINT')
    const r = await child.done
    expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal: 'SIGINT' })
    expect(lines()).toEqual(['closed'])
    expect(existsSync(`${resource}.lock`)).toBe(false)
  })

  it('signal-exit v3 loaded after exitguard was imported, before its first registration: both cleanups run', async () => {
    const resource = join(tmp.dir, 'resource')
    const r = await runNode(join(fixtures, 'v3-coexist.mjs'), [log, resource, 'exit'])
    expect(r.code).toBe(0)
    expect(lines()).toEqual(['ours'])
    expect(existsSync(`${resource}.lock`)).toBe(false)
  })

  it('two copies of exitguard in one process share one registry: each handler once, LIFO', async () => {
    const r = await runNode(join(fixtures, 'two-copies.mjs'), [log])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual(['esm-5', 'esm-3', 'cjs-2', 'esm-1'])
    expect(lines()).toEqual(['esm-5', 'esm-3', 'cjs-2', 'esm-1'])
  })

  it("a forked child and a cluster worker never run their parent's handlers", async () => {
    const r = await runNode(join(fixtures, 'forked.mjs'), [log])
    expect(r.code).toBe(0)
    const byLabel = lines().map((l) => l.split(' ')[0])
    expect(byLabel.sort()).toEqual(['forked-handler', 'parent-handler', 'worker-handler'])
    // Three different processes wrote the three lines.
    expect(new Set(lines().map((l) => l.split('=')[1])).size).toBe(3)
  })

  it('works through require() of the package by name', async () => {
    const r = await runNode(join(fixtures, 'require.cjs'), [log])
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('1')
    expect(lines()).toEqual(['from-require'])
  })
})

describe('registration API (in this process; nothing here runs at exit)', () => {
  it('Registration.unregister() is true once, then false', () => {
    const reg = onExit(() => {})
    expect(reg.active).toBe(true)
    expect(reg.unregister()).toBe(true)
    expect(reg.active).toBe(false)
    expect(reg.unregister()).toBe(false)
  })

  it('unregister(fn) removes every registration of fn and counts them; unknown fn is 0', () => {
    const fn = (..._args: unknown[]) => {}
    const a = onExit(fn)
    onExit(fn, 1)
    const other = onExit(() => {})
    expect(unregister(fn)).toBe(2)
    expect(a.active).toBe(false)
    expect(unregister(fn)).toBe(0)
    expect(unregister(() => {})).toBe(0)
    other.unregister()
  })

  it('registered() lists handlers in run order (newest first), with labels and args', () => {
    const before = registered().length
    function flush(..._args: unknown[]) {}
    const a = onExit(flush, 'x', 1)
    const b = onExit(() => {})
    b.label = 'remove work dir'
    const rows = registered()
    expect(rows.length).toBe(before + 2)
    expect(rows[0]).toMatchObject({ label: 'remove work dir' })
    expect(rows[1]).toMatchObject({ label: 'flush', fn: flush, args: ['x', 1] })
    a.unregister()
    b.unregister()
    expect(registered().length).toBe(before)
  })

  it('rejects a non-function with a typed error', () => {
    expect(() => onExit('nope' as never)).toThrow(ExitguardError)
    expect(() => onExit(42 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
    expect(() => unregister(null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }))
  })

  it('configure() validates asyncTimeout and returns the options in force', () => {
    const { asyncTimeout } = configure()
    expect(asyncTimeout).toBe(5000)
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('| `asyncTimeout` | `5000` |')
    expect(configure({ asyncTimeout: 100 }).asyncTimeout).toBe(100)
    expect(() => configure({ asyncTimeout: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => configure({ asyncTimeout: Number.NaN })).toThrow(/asyncTimeout/)
    configure({ asyncTimeout })
  })
})
