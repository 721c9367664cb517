/**
 * The keeper itself: a POSIX `sh` that starts `awk` (keeper-awk.ts) in the background and exits.
 * awk reads the owner's lines from its stdin (a pipe only the owner can write to, see
 * keeper-pipe.ts); at EOF (the owner's thread or process has ended, however it ended) it waits
 * for proof that the owner is dead, then releases what is left, newest first, and exits.
 *
 * Why sh + awk and not Node: a Node process idles at about 42 MB and takes ~95 ms to start here;
 * dash + mawk take about 2 MB and a few ms (docs/keeper.md has the figures).
 *
 * KEEPER_SH is a worker's (keeper-start.ts): a double fork (sh starts awk with `&`, prints its
 * PID and exits; the owner waits for sh with spawnSync, so sh is reaped at once), so the keeper is
 * never a child of the owner. A keeper that were the child of a worker thread's event loop would
 * stay a zombie after that thread ended, for as long as the process lives; as an orphan, init (or
 * the nearest subreaper) reaps it. A main thread's keeper is its child (KEEPER_SH_CHILD, below).
 * `detached: true` puts sh, and so awk, in a new session and process group: no Ctrl-C, no signal
 * sent to the owner's process group.
 *
 * Arguments of the sh script: $1 the awk program (keeper-awk.ts), $2 the owner's /proc task dir
 * ("" without /proc), $3 the owner's PID, $4 its start time, $5 the stat(1) flag for a format
 * ("-c" GNU, "-f" BSD), $6 KEEPER_WAIT (the waits, in sh: keeper-wait.ts). The lines it reads
 * are defined in keeper-lines.ts.
 */
export const KEEPER_SH = [
  // fd 3 keeps the pipe: a background job's stdin is /dev/null unless redirected explicitly.
  // 4-9: descriptors the owner may have inherited without close-on-exec (a parent's pipe).
  'exec 3<&0 </dev/null 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-',
  'command -v awk >/dev/null 2>&1 || exit 127',
  'EXITGUARD_KEEPER_WAIT=$6 LC_ALL=C awk -v task="$2" -v opid="$3" -v ostart="$4" -v sf="$5" "$1" <&3 3<&- >/dev/null 2>&1 &',
  // The keeper's PID, for lock records; then sh ends, and the owner reaps it at once (spawnSync).
  'echo $!',
].join('\n')

/**
 * The main thread's keeper (keeper-start.ts): the same awk, exec'd in place of sh, so the PID
 * spawn returns is the keeper's. Its stdin is already the pipe. The same arguments.
 */
export const KEEPER_SH_CHILD = ['exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-', 'EXITGUARD_KEEPER_WAIT=$6 LC_ALL=C exec awk -v task="$2" -v opid="$3" -v ostart="$4" -v sf="$5" "$1"'].join('\n')

export { KEEPER_AWK } from './keeper-awk.js'
export { KEEPER_WAIT } from './keeper-wait.js'
