// Bundles, so a program pays for one module load, not ~35 (docs/figures.md: under load,
// `import 'exitguard'` 93 -> 36 ms, `require` 45 -> 21 ms, `exitguard --version` 187 -> 138 ms).
// - The library entry points replace tsc's in place: dist/esm/index.js and dist/cjs/index.js.
//   The .d.ts files, and the other modules tsc emitted, stay in dist/ (types; tests of inner
//   pieces), but only the bundles, their maps and the declarations a user can reach are published
//   (`files` in package.json; scripts/prune-types.mjs removes the unreachable declarations).
// - The `exitguard` command is one CommonJS file, dist/exitguard.cjs.
// Built from src/ itself, so the source maps lead to src/*.ts (their sources inlined), as tsc's do.
// Dependencies stay external: signal-exit, tmp, proper-lockfile and pg load from node_modules,
// all but the first on first use. signal-exit's list of signals (`signal-exit/signals`, a constant
// array) is bundled: it is needed at import, and resolving a package's `exports` the first time
// loads Node's resolver for them, ~5 ms of a ~14 ms import.
const external = [/^node:/, 'signal-exit', 'tmp', 'proper-lockfile', 'pg']
const bundle = (input, file, format, plugins = []) => ({
  input,
  platform: 'node',
  external,
  plugins,
  transform: { target: 'es2022' }, // as tsconfig.json
  output: { file, format, codeSplitting: false, sourcemap: true },
})

// The ESM bundle gets `require` (for the lazily loaded dependencies) from
// createRequire(import.meta.url). An app bundler that turns the app into CommonJS (esbuild's
// default for Node) leaves import.meta.url undefined, and the app died at start: there, the
// enclosing module's own require is used (test/bundlers.test.ts).
const requireInAnyBundle = {
  name: 'require-in-any-bundle',
  renderChunk(code) {
    const shim = 'createRequire(import.meta.url)'
    if (!code.includes(shim)) throw new Error(`the ESM bundle no longer contains ${shim}: review this plugin`)
    return code.replace(shim, '(typeof module === "object" && module !== null && typeof module.require === "function" ? (id) => module.require(id) : createRequire(import.meta.url))')
  },
}

// The `exitguard` command bundles signal-exit too: resolving a package's `exports` the first time
// loads Node's resolver for them, ~5 ms of `exitguard run`'s start (where the exit paths install
// it). It is still evaluated on first use only (rolldown wraps a required module in a lazy init).
// src/require-lazily.cts requires by a variable id, which no bundler can follow: here its require
// of 'signal-exit' is made a literal one. (The library bundles keep it external: an app dedupes it.)
const cliBundlesSignalExit = {
  name: 'cli-bundles-signal-exit',
  transform(code, id) {
    if (!id.endsWith('/src/require-lazily.cts')) return null
    const call = 'require(id)'
    if (code.split(call).length !== 3) throw new Error(`src/require-lazily.cts no longer has two ${call}: review this plugin`)
    return code.replaceAll(call, `(id === 'signal-exit' ? require('signal-exit') : require(id))`)
  },
}

export default [
  {
    ...bundle('src/index.ts', 'dist/esm/index.js', 'esm', [requireInAnyBundle]),
    // The line it rewrites is rolldown's own runtime, which maps to no source.
    onLog: (level, log, handler) => (log.code === 'SOURCEMAP_BROKEN' && log.plugin === requireInAnyBundle.name ? undefined : handler(level, log)),
  },
  bundle('src/index.ts', 'dist/cjs/index.js', 'cjs'),
  {
    ...bundle('src/bin.ts', 'dist/exitguard.cjs', 'cjs', [cliBundlesSignalExit]),
    external: external.filter((e) => e !== 'signal-exit'),
    // Its rewrite keeps every line where it was: only columns after the two calls shift.
    onLog: (level, log, handler) => (log.code === 'SOURCEMAP_BROKEN' && log.plugin === cliBundlesSignalExit.name ? undefined : handler(level, log)),
  },
]
