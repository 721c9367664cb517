// Helpers of the Windows tests (run by Windows node under Wine: scripts/test-windows.mjs).
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The package as built on Linux (dist/), as a Windows user gets it. */
export const distUrl = new URL('../../dist/esm/index.js', import.meta.url).href
export const cliPath = fileURLToPath(new URL('../../dist/exitguard.cjs', import.meta.url))

/** A fresh directory in the Windows temp dir. */
export function scratch(prefix = 'egw-') {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Writes an ES module that imports exitguard as `eg` and runs `body`; returns its path. */
export function script(dir, name, body) {
  const path = join(dir, name)
  writeFileSync(path, `import * as eg from ${JSON.stringify(distUrl)}\nimport * as fs from 'node:fs'\n${body}\n`)
  return path
}

/** Runs Windows node on `args` and waits: { status, stdout, stderr }. */
export function node(args, options = {}) {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000, ...options })
  if (r.error) throw r.error
  return r
}

/** Runs the exitguard CLI (dist/exitguard.cjs) and waits. */
export function cli(args, options = {}) {
  return node([cliPath, ...args], options)
}

/** Starts Windows node on `args`; resolves once it printed `ready` on stdout. */
export function startReady(args, options = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let out = ''
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('ready')) resolve(child)
    })
    child.on('exit', (code) => reject(new Error(`exited ${code} before ready: ${out} ${err}`)))
  })
  child.output = () => ({ out, err })
  return ready
}

/** Resolves with [code, signal] once `child` has exited. */
export function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve([child.exitCode, child.signalCode])
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve([code, signal])))
}

export { pathToFileURL }
