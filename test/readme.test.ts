import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { acquirePidLockSync } from '../src/index.js'
import { makeTempDir, root, runNode, startNode } from './helpers/child.js'
import { makeConsumer, pack, tsc } from './helpers/consumer.js'

/** The fenced blocks of `lang` in the README section that starts with `heading`. */
function blocks(heading: string, lang: string): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const start = readme.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README.md has no section "${heading}"`)
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!)
}

// The quick start as a new user gets it: a fresh ES module project with the README's tsconfig,
// exitguard installed from the packed tarball, `tsc`, then `node export.js`.
const tmp = makeTempDir('exitguard-readme-')
const project = join(tmp.dir, 'project')
let n = 0
beforeAll(async () => {
  mkdirSync(project)
  makeConsumer(project, { tarball: pack(tmp.dir), type: 'module', nodeTypes: true })
  const [tsconfig] = blocks('## TypeScript setup', 'json')
  const code = blocks('## Quick start', 'ts')
  expect(code).toHaveLength(1)
  writeFileSync(join(project, 'tsconfig.json'), tsconfig!)
  writeFileSync(join(project, 'export.ts'), code[0]!)
  const r = await tsc('typescript', project)
  expect(r.stdout + r.stderr).toBe('')
  expect(r.code).toBe(0)
})
afterAll(() => tmp.cleanup())

/** A private TMPDIR (and XDG_RUNTIME_DIR) per run: the quick start puts its lock there and its temp dir in os.tmpdir(). */
function tmpdirForTest(): string {
  const dir = join(tmp.dir, `tmp${n++}`)
  mkdirSync(dir)
  return dir
}

describe('the README quick start, pasted into a fresh project', () => {
  it('compiles with the README tsconfig, runs on this Node, and leaves nothing behind', async () => {
    const dir = tmpdirForTest()
    const r = await runNode(join(project, 'export.js'), [], { cwd: project, env: { TMPDIR: dir, XDG_RUNTIME_DIR: dir } })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^exported to .*export-.* as PID \d+, port 8080\nexport finished or interrupted\n$/)
    expect(readdirSync(dir)).toEqual([])
  })

  // Node 24 runs `using` natively and, like 22.18+, strips types itself: the .ts file runs as it is.
  const nativeUsing = Number(process.versions.node.split('.')[0]) >= 24
  it(`\`node export.ts\` ${nativeUsing ? 'runs the quick start as it is (types stripped, `using` native)' : 'stops at start-up before Node 24 (no native `using`)'}: Node ${process.version}`, async () => {
    const dir = tmpdirForTest()
    const r = await runNode(join(project, 'export.ts'), [], { cwd: project, env: { TMPDIR: dir } })
    if (nativeUsing) {
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/^exported to .*export-.* as PID \d+, port 8080\nexport finished or interrupted\n$/)
    } else {
      expect(r.code).toBe(1)
      // 20 (and 22 before 22.18) know no .ts; 22.18+ strips the types, then meets `using`.
      expect(r.stderr).toMatch(/ERR_UNKNOWN_FILE_EXTENSION|SyntaxError: Unexpected identifier 'lock'/)
    }
    expect(readdirSync(dir)).toEqual([])
  })

  it('the same project also compiles with TypeScript 5.2, the first with `using`', async () => {
    const r = await tsc('typescript-5.2', project, ['--noEmit'])
    expect(r.stdout + r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it('a second instance is told who holds the lock and exits 75', async () => {
    const dir = tmpdirForTest()
    using held = acquirePidLockSync(join(dir, 'nightly-export.pid'))
    const r = await runNode(join(project, 'export.js'), [], { cwd: project, env: { TMPDIR: dir, XDG_RUNTIME_DIR: dir } })
    expect(r.code).toBe(75)
    expect(r.stderr).toContain(`PID ${held.owner.pid}`)
  })

  it('what a kill -9ed run left is taken over and reaped by the next run', async () => {
    const dir = tmpdirForTest()
    writeFileSync(
      join(project, 'killed.mjs'),
      [
        "import { tmpdir } from 'node:os'",
        "import { join } from 'node:path'",
        "import { acquirePidLockSync, tempDirSync } from 'exitguard'",
        "acquirePidLockSync(join(tmpdir(), 'nightly-export.pid'))",
        "console.log(tempDirSync({ prefix: 'export-' }).path)",
        "console.log('ready')",
        'setInterval(() => {}, 1000)',
      ].join('\n'),
    )
    const killed = startNode(join(project, 'killed.mjs'), [], { cwd: project, env: { TMPDIR: dir, XDG_RUNTIME_DIR: dir } })
    await killed.waitFor('ready')
    const leftover = killed.stdout().split('\n')[0]!
    killed.child.kill('SIGKILL')
    expect((await killed.done).signal).toBe('SIGKILL')
    expect(existsSync(leftover)).toBe(true)

    const r = await runNode(join(project, 'export.js'), [], { cwd: project, env: { TMPDIR: dir, XDG_RUNTIME_DIR: dir } })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`the last run (PID ${killed.pid}) died holding the lock`)
    expect(existsSync(leftover)).toBe(false)
    expect(readdirSync(dir)).toEqual([])
  })
})

/** GitHub's anchors for the headings of a Markdown text (outside code blocks), duplicates numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const [, heading] of withoutFences(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = heading!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\- _]/gu, '')
      .replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

function withoutFences(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '')
}

/** The text without fenced code blocks and code spans, where a `[x](y)` is not a link. */
function withoutCode(markdown: string): string {
  return withoutFences(markdown).replace(/`[^`\n]*`/g, '')
}

describe('the docs link to what is there', () => {
  it('every relative link and #anchor in README.md and docs/*.md resolves', () => {
    const files = [
      'README.md',
      ...readdirSync(join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ]
    const broken: string[] = []
    for (const file of files) {
      const text = readFileSync(join(root, file), 'utf8')
      for (const [, target] of withoutCode(text).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target!)) continue
        const [path, anchor] = target!.split('#') as [string, string | undefined]
        const resolved = path === '' ? join(root, file) : join(root, file, '..', path)
        if (!existsSync(resolved)) broken.push(`${file}: ${target} (no such file)`)
        else if (anchor !== undefined && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor)) broken.push(`${file}: ${target} (no such heading)`)
      }
    }
    expect(broken).toEqual([])
  })
})
