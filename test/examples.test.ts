import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeTempDir, root, runNode, startNode } from './helpers/child.js'

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
