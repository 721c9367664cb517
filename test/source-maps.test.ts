// Issue 11: the source maps pointed at src/*.ts, which is not shipped, with no sourcesContent, so a
// stack trace under --enable-source-maps led nowhere. They now carry the sources (inlineSources).
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTempDir, root, startNode } from './helpers/child.js'
import { makeConsumer, pack } from './helpers/consumer.js'

let tmp: ReturnType<typeof makeTempDir>
let project: string
beforeAll(() => {
  tmp = makeTempDir()
  project = join(tmp.dir, 'project')
  // The packed tarball unpacked as node_modules/exitguard, as a registry install lays it out (a
  // directory install would link the repo itself); its dependencies linked from this clone, as
  // `npm install --offline` would need registry metadata that `npm ci` never caches.
  makeConsumer(project, { tarball: pack(tmp.dir), type: 'commonjs', nodeTypes: false })
}, 120_000)
afterAll(() => tmp.cleanup())

describe('source maps of the packed package', () => {
  it.each([
    ['import', "import { acquirePidLockSync } from 'exitguard'\nacquirePidLockSync('app.pid/')\n", 'throws.mjs'],
    ['require', "const { acquirePidLockSync } = require('exitguard')\nacquirePidLockSync('app.pid/')\n", 'throws.cjs'],
  ])('%s: an uncaught error under --enable-source-maps shows the real source line, and every frame names a real line of src/', async (_kind, code, name) => {
    writeFileSync(join(project, name), code)
    const r = await startNode(join(project, name), [], { cwd: project, execArgv: ['--enable-source-maps'] }).done
    expect(r.code).toBe(1)
    // Node's header: "<file>:<line>", then that line of source, read from the map's sourcesContent.
    const [where, shown] = r.stderr.split('\n')
    expect(where).toMatch(new RegExp(`^${project}/node_modules/exitguard/src/errors\\.ts:\\d+$`))
    const line = (file: string, n: number) => readFileSync(join(root, file), 'utf8').split('\n')[n - 1]
    expect(shown).toBe(line('src/errors.ts', Number(where!.split(':').pop())))
    // Where it was thrown (ESM shows the construction, CommonJS the throw): a line of errors.ts that makes or throws it.
    expect(shown).toMatch(/new ExitguardError\(|throw invalidArgValue\(/)
    // Each frame in the package maps to a line of the repository's source that is the call made there.
    const frames = [...r.stderr.matchAll(/at (\S+) \(.*\/node_modules\/exitguard\/(src\/[\w/-]+\.ts):(\d+):\d+\)/g)]
    expect(frames.map((f) => f[1])).toEqual(['invalidArgValue', 'checkFilePath', 'validate', 'acquirePidLockSync'])
    for (const [, fn, file, n] of frames) {
      const callee = { invalidArgValue: 'ExitguardError', checkFilePath: 'invalidArgValue', validate: 'checkFilePath', acquirePidLockSync: 'validate' }[fn!]
      expect(line(file!, Number(n)), `${file}:${n}`).toContain(callee)
    }
  })
})
