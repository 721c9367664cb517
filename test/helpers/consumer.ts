import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { root, runNode, type ChildResult } from './child.js'

const require = createRequire(import.meta.url)

/** The TypeScript versions a consumer is checked with, as installed (npm aliases in devDependencies). */
export const typescripts = [
  { name: 'TypeScript 5.2', pkg: 'typescript-5.2' },
  { name: 'TypeScript 5.x', pkg: 'typescript-5' },
  { name: 'TypeScript 7', pkg: 'typescript' },
] as const

/** `npm pack`s the built package into `dir` and returns the tarball's path: what a user installs. */
export function pack(dir: string): string {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const [info] = JSON.parse(out.slice(out.indexOf('['))) as { filename: string }[]
  return join(dir, info!.filename)
}

/**
 * Makes a consumer project in `dir`: `package.json` with `type`, the tarball unpacked as
 * node_modules/exitguard, and exitguard's runtime dependencies (and `@types/node` if asked)
 * linked from this clone's node_modules, so nothing is fetched from a registry.
 */
export function makeConsumer(dir: string, options: { tarball: string; type: 'module' | 'commonjs'; nodeTypes: boolean }): void {
  mkdirSync(join(dir, 'node_modules', 'exitguard'), { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: options.type }))
  execFileSync('tar', ['-xzf', options.tarball, '-C', join(dir, 'node_modules', 'exitguard'), '--strip-components=1'])
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  const links = [...Object.keys(manifest.dependencies), ...(options.nodeTypes ? ['@types/node', 'undici-types'] : [])]
  for (const name of links) {
    const target = join(root, 'node_modules', name)
    mkdirSync(dirname(join(dir, 'node_modules', name)), { recursive: true })
    symlinkSync(target, join(dir, 'node_modules', name), 'dir')
  }
}

/** Runs `tsc -p dir` of the given TypeScript package; resolves with its output. */
export function tsc(pkg: string, dir: string, args: string[] = []): Promise<ChildResult> {
  const bin = join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', 'tsc')
  return runNode(bin, ['-p', dir, ...args], { cwd: dir, timeout: 120_000 })
}

/** The version a TypeScript package reports, e.g. "5.2.2". */
export function versionOf(pkg: string): string {
  return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version
}
