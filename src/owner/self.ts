import { readFileSync, readlinkSync } from 'node:fs'
import { hostname as osHostname } from 'node:os'
import { childProcess } from '../builtins.js'
import type { ProcessIdentity } from './identity.js'
import { readStartTime } from './start-time.js'

let self: ProcessIdentity | undefined

/** This process's identity, read once. */
export function selfIdentity(): ProcessIdentity {
  // Checked against process.pid each time: a heap snapshot restored elsewhere must not claim our identity.
  if (self?.pid !== process.pid) {
    self = { pid: process.pid, hostname: osHostname(), startTime: readStartTime(process.pid), bootId: readBootId(), pidNamespace: readPidNamespace(), machineId: readMachineId() }
  }
  return self
}

function readMachineId(): string | null {
  try {
    const id = readFileSync('/etc/machine-id', 'latin1').trim()
    return /^[0-9a-f]{32}$/.test(id) ? id : null // "uninitialized", empty: none
  } catch {
    return null
  }
}

function readPidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid')
  } catch {
    return null
  }
}

let bootIdCache: string | null | undefined

/** The boot identifier, or null where the OS has none. */
export function readBootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null
    } catch {
      bootIdCache = process.platform === 'darwin' ? darwinBootTime() : null
    }
  }
  return bootIdCache
}

function darwinBootTime(): string | null {
  try {
    return (
      childProcess()
        .execFileSync('sysctl', ['-n', 'kern.boottime'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .trim() || null
    )
  } catch {
    return null
  }
}
