import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixtures, makeTempDir, root } from './helpers/child.js'
import { makeConsumer, pack, tsc, typescripts, versionOf } from './helpers/consumer.js'

// A user's project: the packed package (not this clone's src), compiled with the TypeScript
// versions exitguard supports, strict + exactOptionalPropertyTypes, and skipLibCheck off so that
// exitguard's own .d.ts files are checked too.
const tmp = makeTempDir('exitguard-types-')
let tarball = ''
beforeAll(() => {
  tarball = pack(tmp.dir)
})
afterAll(() => tmp.cleanup())

const modes = [
  { name: 'ESM, module nodenext', type: 'module', module: 'nodenext' },
  { name: 'CommonJS, module nodenext', type: 'commonjs', module: 'nodenext' },
  { name: 'CommonJS, module commonjs', type: 'commonjs', module: 'commonjs' },
] as const

let n = 0
function project(options: { type: 'module' | 'commonjs'; nodeTypes: boolean; compilerOptions: Record<string, unknown> }): string {
  const dir = join(tmp.dir, `p${n++}`)
  mkdirSync(dir)
  makeConsumer(dir, { tarball, type: options.type, nodeTypes: options.nodeTypes })
  mkdirSync(join(dir, 'src'))
  copyFileSync(join(fixtures, 'consumer', 'core.ts'), join(dir, 'src', 'core.ts'))
  if (options.nodeTypes) copyFileSync(join(fixtures, 'consumer', 'node.ts'), join(dir, 'src', 'node.ts'))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: options.compilerOptions, include: ['src'] }, null, 2))
  return dir
}

const strict = { strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true }

describe.each(typescripts)('a consumer compiles with $name', ({ pkg }) => {
  it.concurrent.each(modes)('$name, no ambient Node types (types: [], lib es2022)', async ({ type, module }) => {
    const dir = project({ type, nodeTypes: false, compilerOptions: { ...strict, target: 'es2022', lib: ['es2022'], module, types: [] } })
    const r = await tsc(pkg, dir)
    expect(r.stdout + r.stderr, `tsc ${versionOf(pkg)}`).toBe('')
    expect(r.code).toBe(0)
  })

  // With @types/node the library check is off (as in the README's tsconfig): exitguard's .d.ts were
  // checked above, and checking all of @types/node takes TypeScript 5 about 20 s here.
  // TypeScript 5 takes seconds per project on a busy machine: with Node's types it checks the two
  // ends (ESM nodenext, CommonJS commonjs); TypeScript 7 checks all three.
  const withNode = pkg === 'typescript' ? modes : modes.filter((m) => m.name !== 'CommonJS, module nodenext')
  it.concurrent.each(withNode)('$name, with @types/node, real AbortSignals and process.env', async ({ type, module }) => {
    const dir = project({ type, nodeTypes: true, compilerOptions: { ...strict, skipLibCheck: pkg !== 'typescript', target: 'es2022', lib: ['es2022', 'esnext.disposable'], module, types: ['node'] } })
    const r = await tsc(pkg, dir)
    expect(r.stdout + r.stderr, `tsc ${versionOf(pkg)}`).toBe('')
    expect(r.code).toBe(0)
  })
})

describe('TypeScript 7 defaults', () => {
  it('a project that sets only strict, exactOptionalPropertyTypes and module compiles (no types, no lib, no target)', async () => {
    const dir = project({ type: 'module', nodeTypes: false, compilerOptions: { strict: true, exactOptionalPropertyTypes: true, module: 'nodenext', noEmit: true } })
    const r = await tsc('typescript', dir)
    expect(r.stdout + r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it('the check can fail: a wrong type in the consumer is reported', async () => {
    const dir = project({ type: 'module', nodeTypes: false, compilerOptions: { ...strict, module: 'nodenext' } })
    writeFileSync(join(dir, 'src', 'wrong.ts'), "import { acquirePidLockSync } from 'exitguard'\nexport const port: string = acquirePidLockSync('/x', { data: { port: 1 } }).owner.data.port\n")
    const r = await tsc('typescript', dir)
    expect(r.stdout).toContain("error TS2322: Type 'number' is not assignable to type 'string'")
    expect(r.code).not.toBe(0)
  })
})

describe('ExitguardErrorCode', () => {
  it('lists every code the source gives an ExitguardError', () => {
    const errors = readFileSync(join(root, 'src', 'errors.ts'), 'utf8')
    const union = errors.slice(errors.indexOf('export type ExitguardOwnErrorCode'), errors.indexOf('export type ExitguardErrorCode'))
    const listed = new Set([...union.matchAll(/'([A-Z0-9_]+)'/g)].map((m) => m[1]))
    const used = new Set<string>()
    for (const file of readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })) {
      if (!/\.c?ts$/.test(file)) continue
      const text = readFileSync(join(root, 'src', file), 'utf8')
      for (const m of text.matchAll(/(?:ExitguardError\(\s*|\bcode: |\?\? )'([A-Z][A-Z0-9_]+)'/g)) if (!m[1]!.startsWith('SIG')) used.add(m[1]!) // a signal name default is not an error code
    }
    expect(used.size).toBeGreaterThan(5)
    expect([...used].filter((code) => !listed.has(code))).toEqual([])
  })
})
