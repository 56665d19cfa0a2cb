#!/usr/bin/env bash
# search_lock_p10.sh - the lock of a `dnc search` journal against a run
# that finishes (and removes its journal) between another's open() and its
# flock(): that one locked the removed file, ran beside a third run of
# the same -o that had made a new journal, and removed that journal at
# its end. strace delays the second run's flock; the first and third stop
# themselves (SIGSTOP) after their first batch, holding their locks.
set -u
. "$(dirname "$0")/tap.bash"
DNC="$B/dnc"
case "$DNC" in /*) ;; *) DNC="$PWD/$DNC" ;; esac

if ! command -v strace >/dev/null ||
   ! strace -qq -o /dev/null -e trace=flock true 2>/dev/null; then
  echo "1..0 # SKIP strace cannot run here"
  exit 0
fi
cd "$tmp" || exit 1
printf 'base T(x) = tanh(x)\nbase E(x) = erf(x)\nstage a: id | scale(0.25, 0.5, 2, 4)\nstage b: id | shift(-1, -0.5, 0.5, 1)\nstage c: id | clip(0.5, 1) | mix(0.1, 0.25)\n' >s.dns
# a process stopped (SIGSTOP), within 10 s
stopped() {
  for _ in $(seq 200); do
    case "$(ps -o stat= -p "$1")" in T*) return 0 ;; esac
    sleep 0.05
  done
  return 1
}
# continue it (it stops again after each batch) until it exits; only while
# it is stopped (T): a SIGCONT discards a pending SIGSTOP, and at exit the
# sanitizers' leak check stops the process under ptrace (t) to scan it,
# whose tracer then waited for a stop that never came, the process
# spinning until CI's time ran out
finish() {
  while kill -0 "$1" 2>/dev/null; do
    case "$(ps -o stat= -p "$1" 2>/dev/null)" in
    T*) kill -CONT "$1" 2>/dev/null ;;
    esac
    sleep 0.02
  done
  wait "$1"
}
export DNC_SEARCH_STOP_SIGNAL=19
DNC_SEARCH_STOP_AFTER=1 "$DNC" search s.dns -o P -q --threads 1 \
  >/dev/null 2>&1 &
A=$!
t "the first run holds the journal, stopped" stopped $A
(unset DNC_SEARCH_STOP_SIGNAL
 exec strace -f -qq -o /dev/null -e trace=flock \
   -e inject=flock:delay_enter=2000000 "$DNC" search s.dns -o P -q \
   >/dev/null 2>B.err) &
Bp=$!
sleep 0.7 # B has opened the journal, and waits to lock it
finish $A
t "... and finishes, removing it" test $? = 0 -a ! -e P.journal
DNC_SEARCH_STOP_AFTER=1 "$DNC" search s.dns -o P -q --threads 1 \
  >/dev/null 2>&1 &
C=$!
t "a third run makes a new journal and holds it" stopped $C
wait $Bp
rc=$?
t "the second run, locking the removed journal, stops with status 1" \
  test $rc = 1
t "... saying the journal is being written" \
  grep -q "'P.journal' is being written by another dnc search" B.err
t "... and the third run's journal is still there" test -e P.journal
finish $C
t "the third run finishes" test $? = 0 -a -e P.csv -a ! -e P.journal
tap_done
