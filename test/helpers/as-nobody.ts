// Children run as another user (uid/gid 65534, "nobody") to test what root's permission bypass
// hides. The clone may live in a directory that user can't enter (/root/x, a `mktemp -d`, mode
// 0700), so they run from a copy of what they need (package.json, dist/, test/fixtures/ and the
// runtime dependencies) in a world-readable directory, and with that copy as their cwd.
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { root } from './child.js'

export const NOBODY = { uid: 65534, gid: 65534 } as const

/** Where a copy for `nobody` lives, or why there can't be one (the tests then skip, printing it). */
export type NobodyCopy = { root: string; fixtures: string; cleanup(): void; skip?: undefined } | { skip: string }

/**
 * Copies what fixtures need into a fresh world-readable directory and checks that uid 65534 can
 * run node there. `{ skip }` says why not: not root, or node itself unreachable for that user.
 */
export function nobodyCopy(): NobodyCopy {
  if (process.getuid?.() !== 0) return { skip: 'running a child as uid 65534 needs root' }
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'exitguard-nobody-')))
  const cleanup = () => rmSync(base, { recursive: true, force: true })
  try {
    cpSync(join(root, 'package.json'), join(base, 'package.json'))
    cpSync(join(root, 'dist'), join(base, 'dist'), { recursive: true })
    cpSync(join(root, 'test', 'fixtures'), join(base, 'test', 'fixtures'), { recursive: true })
    for (const name of runtimeDependencies()) cpSync(join(root, 'node_modules', name), join(base, 'node_modules', name), { recursive: true })
    // Readable whatever the umask of the clone was (a 077 umask makes every file 0600).
    makeReadable(base)
    const probe = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('./dist/esm/index.js'); console.log('ok')"], { ...NOBODY, cwd: base, encoding: 'utf8' })
    if (probe.stdout.trim() !== 'ok') {
      cleanup()
      const why = probe.error?.message ?? probe.stderr.split('\n').find((l) => /Error|denied|Cannot/.test(l)) ?? probe.stderr.trim()
      return { skip: `uid 65534 cannot run ${process.execPath} from ${base} (is node or ${tmpdir()} out of its reach?): ${why}` }
    }
  } catch (err) {
    cleanup()
    throw err
  }
  return { root: base, fixtures: join(base, 'test', 'fixtures'), cleanup }
}

/** The packages the built library loads at run time, from the top-level node_modules (nested ones come along with their parent). */
function runtimeDependencies(): string[] {
  const names = new Set<string>()
  const visit = (pkgDir: string) => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
    for (const name of Object.keys(pkg.dependencies ?? {})) {
      if (pkgDir !== root && existsSync(join(pkgDir, 'node_modules', name))) visit(join(pkgDir, 'node_modules', name))
      else if (!names.has(name) && existsSync(join(root, 'node_modules', name))) {
        names.add(name)
        visit(join(root, 'node_modules', name))
      }
    }
  }
  visit(root)
  return [...names]
}

function makeReadable(path: string): void {
  const stats = lstatSync(path)
  if (stats.isSymbolicLink()) return
  chmodSync(path, stats.mode | (stats.isDirectory() ? 0o555 : 0o444))
  if (stats.isDirectory()) for (const name of readdirSync(path)) makeReadable(join(path, name))
}
