import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeTempDir, root, runNode, startCommand, startNode } from './helpers/child.js'

const example = (name: string) => join(root, 'examples', name)

describe('examples run as the README says', () => {
  it('demo.mjs (npm run demo) shows the main job and ends by itself', async () => {
    const r = await runNode(example('demo.mjs'), [], { timeout: 60_000 })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('B exited with code 75')
    expect(r.stdout).toMatch(/\[C\] the previous run \(PID \d+\) died without cleaning up; took its lock over/)
    expect(r.stdout).toContain('C stopped by SIGTERM (signal SIGTERM); lock file left: false')
    expect(r.stdout).toContain('the job died by SIGINT (a shell shows 130); lock file left: false')
  })

  it('atexit-order.mjs runs handlers last-registered-first, skipping the unregistered one', async () => {
    const r = await runNode(example('atexit-order.mjs'))
    expect(r.code).toBe(0)
    const order = r.stdout.split('\n').filter((l) => /removed|finished|flushed|closed|never/.test(l))
    expect(order).toEqual([
      'removed the temp files (registered last, runs first)',
      'finished async cleanup (awaited on Ctrl-C and at natural end)',
      'flushed the log',
      'closed the database (registered first, runs last)',
    ])
    expect(r.stderr).toContain('this handler fails; the others still run')
  })

  it('atexit-order.mjs wait + Ctrl-C: handlers run, then it dies by SIGINT', async () => {
    const child = startNode(example('atexit-order.mjs'), ['wait'])
    await child.waitFor('press Ctrl-C: the handlers run, then the process dies by SIGINT (the shell shows 130)')
    child.child.kill('SIGINT')
    const r = await child.done
    expect(r.signal).toBe('SIGINT')
    expect(r.stdout).toContain('closed the database')
  })

  it.skipIf(process.platform !== 'linux')('daemon.sh: start, start again, status, restart, stop, as an init script', async () => {
    const tmp = makeTempDir()
    const env = { EXITGUARD: `${process.execPath} ${join(root, 'dist/exitguard.cjs')}`, PIDFILE: join(tmp.dir, 'demo.pid'), LOG: join(tmp.dir, 'demo.log') }
    const action = (name: string) => startCommand('sh', [example('daemon.sh'), name], { env }).done
    try {
      expect(await action('status')).toMatchObject({ code: 3 })
      const started = await action('start')
      expect(started, started.stderr).toMatchObject({ code: 0 })
      const pid = Number(readFileSync(env.PIDFILE, 'utf8').split('\n')[0])
      expect(started.stdout).toContain(`started: PID ${pid} (sh -c trap`)
      const again = await action('start') // LSB: already running is success
      expect(again.code).toBe(0)
      expect(again.stderr).toContain(`already running: PID ${pid}`)
      expect(await action('status')).toMatchObject({ code: 0 })
      const restarted = await action('restart')
      expect(restarted.code).toBe(0)
      expect(restarted.stdout).toMatch(new RegExp(`^stopped: PID ${pid} ended \\d+ ms after SIGTERM\n`))
      expect(await action('stop')).toMatchObject({ code: 0 })
      expect(await action('status')).toMatchObject({ code: 3 })
      expect(await action('stop')).toMatchObject({ code: 0 })
      // The daemon's trap ran on each SIGTERM, so stop let it end on its own.
      expect(readFileSync(env.LOG, 'utf8').match(/stopping on SIGTERM/g)).toHaveLength(2)
    } finally {
      await action('stop')
      tmp.cleanup()
    }
  })

  it('second-instance.mjs: later runs hand their arguments to the first, which replies; --quit ends it', async () => {
    const tmp = makeTempDir()
    try {
      const env = { EXAMPLE_LOCK: join(tmp.dir, 'app.pid') }
      const first = startNode(example('second-instance.mjs'), ['a.txt'], { env })
      await first.waitFor()
      const second = await runNode(example('second-instance.mjs'), ['b.txt', 'c.txt'], { env })
      expect(second.code).toBe(0)
      expect(second.stdout).toBe(`handed 2 argument(s) to the running instance, PID ${first.pid}\n`)
      const quit = await runNode(example('second-instance.mjs'), ['--quit'], { env })
      expect(quit.code).toBe(0)
      const r = await first.done
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/PID \d+ \(in .+\) sent: b\.txt c\.txt\n/)
      expect(r.stdout).toMatch(/sent: --quit\n/)
      expect(existsSync(env.EXAMPLE_LOCK)).toBe(false)
    } finally {
      tmp.cleanup()
    }
  })
})
