import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { root } from './helpers/child.js'

// The folders of src/, in the order their imports run: each may use only those before it.
const LAYERS = ['internal', 'owner', 'exit', 'keeper', 'messaging', 'locks', 'temp', 'daemon', 'cli']

it("src/'s folders import only the folders before them (README: Development)", () => {
  const src = join(root, 'src')
  const folders = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
  expect(folders.sort()).toEqual([...LAYERS].sort())
  const backwards: string[] = []
  for (const folder of folders) {
    for (const file of readdirSync(join(src, folder))) {
      const text = readFileSync(join(src, folder, file), 'utf8')
      for (const [, used] of text.matchAll(/from '\.\.\/([a-z-]+)\//g)) {
        if (LAYERS.indexOf(used!) >= LAYERS.indexOf(folder)) backwards.push(`${folder}/${file} imports ${used}/`)
      }
    }
  }
  expect(backwards).toEqual([])
})
