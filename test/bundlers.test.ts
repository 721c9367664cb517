// An app that uses exitguard, bundled by esbuild (the most used bundler for Node apps) in either
// output format, still starts and still cleans up. Its CommonJS output once died at start: the ESM
// bundle's createRequire(import.meta.url) met an import.meta.url that CommonJS doesn't have.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildSync } from 'esbuild'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { makeTempDir, root } from './helpers/child.js'

let tmp: ReturnType<typeof makeTempDir>
beforeEach(() => {
  tmp = makeTempDir('exitguard-bundle-')
})
afterEach(() => tmp.cleanup())

describe('an app bundled with esbuild', () => {
  it.each(['esm', 'cjs'] as const)('format %s: it runs, its exit handlers run, and its temp file is gone', (format) => {
    // A project as npm lays it out: exitguard beside the dependencies it loads on first use.
    const project = join(tmp.dir, 'app')
    mkdirSync(join(project, 'node_modules'), { recursive: true })
    symlinkSync(root, join(project, 'node_modules', 'exitguard'))
    for (const dep of ['tmp', 'signal-exit']) symlinkSync(join(root, 'node_modules', dep), join(project, 'node_modules', dep))
    const files = join(tmp.dir, 'files')
    mkdirSync(files)
    writeFileSync(
      join(project, 'app.mjs'),
      `
      import { existsSync } from 'node:fs'
      import { onExit, tempFileSync } from 'exitguard'
      const file = tempFileSync({ dir: ${JSON.stringify(files)} })
      onExit(() => console.log(existsSync(file.path) ? 'exit handler ran, file still there' : 'file gone too early'))
      console.log('started')
    `,
    )
    const out = join(project, 'dist', format === 'esm' ? 'app.mjs' : 'app.cjs')
    buildSync({ entryPoints: [join(project, 'app.mjs')], bundle: true, platform: 'node', format, outfile: out, logLevel: 'silent' })
    const r = spawnSync(process.execPath, [out], { cwd: project, encoding: 'utf8' })
    expect(r, r.stderr).toMatchObject({ status: 0, stdout: 'started\nexit handler ran, file still there\n' })
    expect(readdirSync(files)).toEqual([])
  })
})
