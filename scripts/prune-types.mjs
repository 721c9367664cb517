// The last build step: keeps, of the declarations tsc emitted into dist/esm and dist/cjs, those
// that the two index.d.ts reach through their relative imports (the types a user can see), and
// removes the rest (the command line's, the keeper's inner pieces, ...), so the package ships
// no declaration that no user can reach. The per-module .js files stay in dist/ for the tests
// but are not published either (`files` in package.json lists the bundles). Fails if a relative
// import in a kept declaration names a file that is not there.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const isDeclaration = (name) => /\.d\.[cm]?ts$/.test(name)
const declarationOf = (file) =>
  file
    .replace(/\.js$/, '.d.ts')
    .replace(/\.cjs$/, '.d.cts')
    .replace(/\.mjs$/, '.d.mts')

const kept = new Set()
function visit(file) {
  if (kept.has(file)) return
  if (!existsSync(file)) throw new Error(`${relative(root, file)} is imported by a declaration but was not emitted`)
  kept.add(file)
  const text = readFileSync(file, 'utf8')
  for (const [, spec] of text.matchAll(/(?:\bfrom|\bimport\(|\brequire\()\s*['"](\.\.?\/[^'"]+)['"]/g)) visit(declarationOf(join(dirname(file), spec)))
}

const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]))
let removed = 0
for (const format of ['esm', 'cjs']) {
  const dir = join(root, 'dist', format)
  visit(join(dir, 'index.d.ts'))
  for (const file of walk(dir).filter((f) => isDeclaration(f) && !kept.has(f))) {
    rmSync(file)
    removed++
  }
}
console.log(`declarations: kept ${kept.size} that dist/esm/index.d.ts and dist/cjs/index.d.ts reach, removed ${removed}`)
