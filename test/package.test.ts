// What the published package carries: only what a user can reach. The bundles (library as ESM
// and CommonJS, the command line), their source maps, the declarations that the two index.d.ts
// reach, and package.json, README and LICENSE. The per-module files tsc emits into dist/ stay
// there for the tests and are not shipped (`files` in package.json, scripts/prune-types.mjs).
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { root, runNode } from './helpers/child.js'

const require = createRequire(import.meta.url)
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>
const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as [
  { files: { path: string }[] },
]
const files = packed.files.map((f) => f.path).sort()

const bundles = ['dist/esm/index.js', 'dist/cjs/index.js', 'dist/exitguard.cjs']

describe('the packed package', () => {
  it('carries the bundles and their maps, the reachable declarations, package.json, README and LICENSE: nothing else', async () => {
    // tsc itself says which declarations a user's compiler loads from the two entry points.
    const tscBin = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')
    const reached: string[] = []
    for (const entry of ['dist/esm/index.d.ts', 'dist/cjs/index.d.ts']) {
      const r = await runNode(tscBin, ['--ignoreConfig', '--noEmit', '--listFilesOnly', '--types', 'node', '--module', 'nodenext', '--skipLibCheck', entry], { cwd: root, timeout: 60_000 })
      expect(r.code, r.stdout + r.stderr).toBe(0)
      reached.push(
        ...r.stdout
          .split('\n')
          .filter((l) => l.startsWith(join(root, 'dist')))
          .map((l) => relative(root, l)),
      )
    }
    expect(reached).toContain('dist/esm/locks/pid-lock.d.ts')
    const expected = ['LICENSE', 'README.md', 'package.json', 'dist/cjs/package.json', ...bundles, ...bundles.map((b) => `${b}.map`), ...reached]
    expect(files).toEqual([...new Set(expected)].sort())
  })

  it('every file package.json names is in it', () => {
    const named: string[] = []
    const collect = (v: unknown): void => {
      if (typeof v === 'string') named.push(v.replace(/^\.\//, ''))
      else if (v && typeof v === 'object') Object.values(v).forEach(collect)
    }
    collect([pkg.main, pkg.types, pkg.bin, pkg.exports])
    expect(named.length).toBeGreaterThan(6)
    for (const file of named) expect(files, file).toContain(file)
  })

  it('no bundle loads a per-module file of dist/ (those are not shipped)', () => {
    for (const bundle of bundles) {
      const code = readFileSync(join(root, bundle), 'utf8')
      const relativeLoads = [...code.matchAll(/(?:\brequire\(|\bimport\(|\bfrom\s*)\s*["'](\.[^"']*)["']/g)].map((m) => m[1])
      expect(relativeLoads, bundle).toEqual([])
    }
  })
})
