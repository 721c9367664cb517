/** Who a process is, in a form that survives PID reuse and reboots. */
export interface ProcessIdentity {
  pid: number
  hostname: string
  /** The process start time as the OS reports it (Linux: `/proc/<pid>/stat` field 22, clock ticks since boot). */
  startTime: string | null
  /** Linux: `/proc/sys/kernel/random/boot_id`; null where the OS has none we can read. */
  bootId: string | null
  /**
   * Linux: the PID namespace (`/proc/self/ns/pid`, e.g. "pid:[4026531836]"). A PID means
   * nothing outside its namespace: containers sharing a hostname and a volume.
   */
  pidNamespace?: string | null
  /**
   * `/etc/machine-id` (systemd's, stable across reboots), or null where there is none. It tells a
   * reboot (another boot id, same machine) from another machine that has the same hostname.
   */
  machineId?: string | null
}

/** The verdict on a recorded owner. `alive` also covers "cannot prove it dead" (fail closed). */
export interface OwnerVerdict {
  alive: boolean
  /** For people: why, e.g. "no process has PID 4242" or "held on another host (web-2)". */
  reason: string
  /** True when the owner is on another host, so it can't be judged here. */
  foreign: boolean
}

/**
 * What a lock records about its holder: identity plus what a person needs to know. `D` is the
 * type of its `data` option: `null` when none was given, `unknown` for a record read from disk
 * (say what you expect with `readPidLock<{ port: number }>(path)`).
 */
export interface LockOwner<D = unknown> extends ProcessIdentity {
  /** ISO time the lock was taken. */
  createdAt: string
  /** The holder's command line, shortened, for messages. */
  command: string
  /** The `data` option of the holder (e.g. its port), or null. */
  data: D
  /** Unique per acquisition: tells two records of the same process apart. */
  token: string
  /** The holder's message socket (a named pipe on Windows), when it took the lock with `onMessage`. */
  socket?: string
  /**
   * Windows: the named pipe (`\\.\pipe\exitguard-<token>`) the holder listens on while it
   * holds the lock; gone means dead (src/locks/holder-pipe.ts). Absent elsewhere.
   */
  pipe?: string
  /**
   * The holder's keeper process (docs/keeper.md), a co-holder: the lock stays held while the
   * holder or its keeper runs, so the keeper can stop the holder's work and unlink the file
   * after a SIGKILL without racing a taker. Absent (or null) without a keeper.
   */
  keeper?: { pid: number; startTime: string } | null
  /**
   * Where the record was written: its directory (`"<dev>:<ino>"`) and file name. A record is acted
   * on (signalled, messaged) only where it is found (docs/threat-model.md): one moved or linked to
   * another lock path by someone who can rename files is not taken for that lock's holder.
   */
  location?: { dir: string; name: string } | null
}
