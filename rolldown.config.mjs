// The `exitguard` command as one CommonJS file (dist/exitguard.cjs), bundled from tsc's ESM
// output. Why: a CLI starts on every cron tick, and loading ~40 ES modules cost ~40 ms more
// than one CommonJS file (docs/figures.md). The library entry points stay unbundled, so the
// published files map one-to-one to src/. Dependencies stay external: they load lazily, on
// first use, from node_modules.
export default {
  input: 'dist/esm/bin.js',
  platform: 'node',
  external: [/^node:/, /^signal-exit(\/|$)/, 'tmp', 'proper-lockfile', 'pg'],
  output: { file: 'dist/exitguard.cjs', format: 'cjs', codeSplitting: false },
}
