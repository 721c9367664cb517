#!/bin/sh
# An init script (LSB actions and exit codes) for a daemon run under exitguard:
#   examples/daemon.sh start|stop|restart|status|wait
#
# `exitguard start` runs the daemon detached, with the lock file naming the daemon's own
# PID and start time; `stop` signals it only if that record still describes the live
# daemon (a reused PID is never signalled); `status --lsb` answers in LSB codes.
# The daemon here is a shell loop that logs, and says goodbye on SIGTERM.
set -u

EXITGUARD=${EXITGUARD:-"$(dirname "$0")/../node_modules/.bin/exitguard"} # the installed bin (npx resolves it on every call)
RUN=${RUN:-${XDG_RUNTIME_DIR:-/tmp}}
PIDFILE=${PIDFILE:-$RUN/exitguard-demo-daemon.pid}
LOG=${LOG:-$RUN/exitguard-demo-daemon.log}
DAEMON='trap "echo stopping on SIGTERM; exit 0" TERM; echo "daemon running as PID $$"; while :; do sleep 1 & wait $!; done'

start() {
  $EXITGUARD start --lock "$PIDFILE" --log "$LOG" -- sh -c "$DAEMON"
  status=$?
  # LSB: starting a service that already runs is success (stderr named the running PID).
  [ "$status" -eq 75 ] && return 0
  return "$status"            # 126/127: not runnable/found; 73: PIDFILE's directory missing
}

stop() {
  # SIGTERM, up to 5 s to end, then SIGKILL. 0: stopped or was not running;
  # 1: still running; 4: refused (the PID file names a process it can't verify).
  $EXITGUARD stop "$PIDFILE" --timeout 5000 --kill
}

case "${1:-}" in
  start)   start ;;
  stop)    stop ;;
  restart|force-reload) stop && start ;;
  status)  $EXITGUARD status "$PIDFILE" --lsb ;;   # 0 running, 1 dead but PID file left, 3 not running, 4 unknown
  wait)    $EXITGUARD wait "$PIDFILE" ;;           # returns once the daemon is gone
  *)       echo "Usage: $0 start|stop|restart|force-reload|status|wait" >&2; exit 2 ;;  # LSB: 2 invalid arguments
esac
