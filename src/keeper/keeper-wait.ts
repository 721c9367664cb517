/**
 * The keeper's waits, as sh functions its awk program runs (see waitsh() in keeper-awk.ts), each
 * a piece that can be run on its own. `read` is a shell builtin, so a check spawns nothing.
 * They are in sh, not awk: they read /proc files of tasks that are ending, and a read(2) that
 * fails (ESRCH once the task is released) is fatal to mawk's getline.
 * (Plain templates: `\${` keeps sh's `${` from being interpolated.)
 */

/**
 * `alive DIR PID START` is true while the process or task runs with that start time: a missing
 * /proc entry, one that can't be read (ESRCH: released while read), a zombie or another start
 * time is proof of death. Without /proc (DIR ""), `ps -o lstart` gives the start time.
 */
export const SH_ALIVE = `alive() {
  s=
  if [ -n "$1" ]; then
    IFS= read -r s 2>/dev/null <"$1/stat"
    [ -n "$s" ] || return 1
    d=$1 w=$3
    set -- \${s##*") "}
    # Too few fields: the name (field 2) holds a newline, where read stopped. Read it all (rare).
    if [ $# -lt 20 ]; then
      s=$(tr -d '\\n' <"$d/stat" 2>/dev/null)
      [ -n "$s" ] || return 1
      set -- \${s##*") "}
    fi
    [ "$1" != Z ] && [ "$1" != X ] && [ "\${20}" = "$w" ]
  else
    s=$(ps -o lstart= -p "$2" 2>/dev/null)
    [ -n "$s" ] || return 1
    w=$3
    set -- $s
    s=$*
    set -- $w
    [ "$s" = "$*" ]
  fi
}`

export const SH_GONE = `# The owner: EOF comes just before it is gone, so re-check a few hundred times, then back off.
gone() {
  i=0
  while alive "$1" "$2" "$3"; do
    i=$((i + 1))
    if [ $i -le 300 ]; then continue; fi
    if [ $i -le 400 ]; then sleep 0.002; elif [ $i -le 500 ]; then sleep 0.02; else sleep 0.5; fi
  done
  return 0
}`

export const SH_NOW = `# Milliseconds since boot in $t, from /proc/uptime (10 ms steps) with builtins only; "" without it.
now() {
  t=
  IFS=' .' read -r sec cs rest 2>/dev/null </proc/uptime || return 0
  t=$((sec * 1000 + \${cs#0} * 10))
}`

export const SH_GROUPLIVE = `# True while the process group PGID (DIR PGID START: led by PGID, started at START) has a
# process that runs (not a zombie): the leader, or what it left in its group. No number of a
# group with a process in it is given to a new process; once it is empty it may be, so a leader
# with another start time leads someone else's group. Reads every /proc/<pid>/stat (builtins
# only); without /proc, ps lists the groups.
grouplive() {
  d=$1 g=$2 w=$3
  if [ -z "$d" ]; then
    s=$(ps -A -o pgid= -o stat= 2>/dev/null | while read -r p st; do [ "$p" = "$g" ] && [ "\${st#Z}" = "$st" ] && echo y; done)
    [ -n "$s" ]
    return
  fi
  s=
  IFS= read -r s 2>/dev/null <"$d/stat"
  if [ -n "$s" ]; then
    set -- \${s##*") "}
    [ "\${20}" = "$w" ] || return 1
  fi
  set +f
  for f in /proc/[0-9]*/stat; do
    s=
    IFS= read -r s 2>/dev/null <"$f"
    set -- \${s##*") "}
    if [ "$3" = "$g" ] && [ "$1" != Z ] && [ "$1" != X ]; then set -f; return 0; fi
  done
  set -f
  return 1
}`

export const SH_STOP = `# The wrapped command (C) or its process group (G), for stop.
live() { if [ "$kind" = G ]; then grouplive "$@"; else alive "$@"; fi; }
hit() { if [ "$kind" = G ]; then kill -s "$1" -- "-$2" 2>/dev/null; else kill -s "$1" "$2" 2>/dev/null; fi; }
# A wrapped command (DIR PID START GRACE_MS FROM KIND): SIGTERM, SIGKILL once the grace period
# has passed, each only while it runs (its start time matches); returns once it has ended,
# however long that takes: a process in D state outlives SIGKILL until its I/O ends, and what it
# used (its lock above all) stays held until then. KIND G: the same for the process group it
# leads, until no process of it is left. The grace is measured on the clock where there is one:
# counting sleeps alone ran 45% long. Prints "term T" once SIGTERM is sent (T: ms since boot, or
# "-" without a clock); a try whose sh could not fork a sleep is run again with T as FROM, and
# goes on from there rather than from a new SIGTERM.
stop() {
  kind=$6
  # A group is checked by reading all of /proc: every 50 ms, not in a busy loop.
  step=0.01 ms=10
  [ "$kind" != G ] || step=0.05 ms=50
  live "$1" "$2" "$3" || return 0
  from=$5
  if [ -z "$from" ]; then
    hit TERM "$2"
    now
    from=\${t:--}
    echo "term $from"
    i=0
    [ "$kind" != G ] || i=200
    while [ $i -lt 200 ]; do alive "$1" "$2" "$3" || return 0; i=$((i + 1)); done
  fi
  waited=0
  while live "$1" "$2" "$3"; do
    now
    if [ "$from" != - ] && [ -n "$t" ]; then waited=$((t - from)); fi
    if [ $waited -ge "$4" ]; then hit KILL "$2"; break; fi
    sleep $step
    [ "$from" != - ] || waited=$((waited + ms))
  done
  # No limit: backing off to one check a second.
  i=0
  while live "$1" "$2" "$3"; do
    if [ $i -lt 100 ]; then sleep $step; elif [ $i -lt 200 ]; then sleep 0.1; else sleep 1; fi
    i=$((i + 1))
  done
  return 0
}`

/** All of them, as the keeper's awk gets them (EXITGUARD_KEEPER_WAIT). `set -f`: no globbing of the words split. */
export const KEEPER_WAIT = ['set -f', SH_ALIVE, SH_GONE, SH_NOW, SH_GROUPLIVE, SH_STOP, ''].join('\n')
