import { lstatSync } from 'node:fs'
import { exitRegistry } from '../exit/registry.js'
import { startTimeAsSeen } from '../owner/start-time.js'
import { Keeper } from './keeper.js'
import { commandLine, lockLine, tempLine } from './keeper-lines.js'

/**
 * What the guards call: register an entry with this thread's keeper, and take it back on
 * release. Every function here returns null, and the guard stays in-process only, where no
 * keeper runs (option off, no /bin/sh, no way to identify the owner, keeper dead).
 */

// One keeper per thread, shared by every copy of exitguard loaded in it (globalThis is per thread).
const kKeeper = Symbol.for('exitguard.keeper.v1')
const slot = globalThis as typeof globalThis & { [kKeeper]?: { keeper: Keeper | null } }

/** This thread's keeper, started on first need; null if the `keeper` option is off or none can run. */
export function threadKeeper(): Keeper | null {
  if (!exitRegistry().options.keeper) return null
  slot[kKeeper] ??= { keeper: Keeper.start() }
  const state = slot[kKeeper]
  return state.keeper?.alive ? state.keeper : null
}

/** One entry the keeper holds for a guard. `release()` is idempotent. */
export class KeeperHold {
  #held = true

  constructor(
    readonly keeper: Keeper,
    readonly id: number,
  ) {}

  /** For `registered()` labels: says who else will release it. */
  get note(): string {
    return ` (its keeper, PID ${this.keeper.pid}, releases it if this ${this.keeper.scope} is killed)`
  }

  /**
   * The owner released it (or kept it): the keeper must forget it. `now`: the entry still matches
   * what the keeper would release (a kept temp file, a lock handed over), so the keeper must hear
   * of it before this process can end, not lazily (see `Keeper.drop`).
   */
  release(now = false): void {
    if (!this.#held) return
    this.#held = false
    this.keeper.drop(this.id, now)
  }
}

function hold(keeper: Keeper | null, line: string | null): KeeperHold | null {
  if (!keeper || line === null) return null
  const id = keeper.hold(line)
  return id === null ? null : new KeeperHold(keeper, id)
}

/** A temp file or dir just created at `path` (its (dev, ino) and birth time are read now). */
export function holdTemp(path: string): KeeperHold | null {
  const keeper = threadKeeper()
  if (!keeper) return null
  try {
    const stats = lstatSync(path, { bigint: true })
    return hold(keeper, tempLine(stats.dev, stats.ino, stats.birthtimeNs, path))
  } catch {
    return null // already gone: nothing to hold
  }
}

/** A PID lock file just won; `keeper` is the one its record names as co-holder. */
export function holdLock(keeper: Keeper | null, path: string, dev: number, ino: number, token: string): KeeperHold | null {
  return keeper?.alive ? hold(keeper, lockLine(dev, ino, token, path)) : null
}

/**
 * A command this thread started: stopped (SIGTERM, SIGKILL after `graceMs`) if this thread dies
 * first; with `group`, the process group it leads, until no process of it is left.
 */
export function holdCommand(pid: number, graceMs: number, group = false): KeeperHold | null {
  const keeper = threadKeeper()
  // As the keeper's sh reads /proc in this time namespace, without hostStartTime's offset.
  const startTime = keeper ? startTimeAsSeen(pid) : null
  return startTime === null ? null : hold(keeper, commandLine(pid, graceMs, startTime, group))
}
