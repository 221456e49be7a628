# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sourced by bench/run and bench/profile: the host drives a guest step by step.
# The guest runs an executor (guest_plan) that reads a shell command from
# channel go, runs it, and answers on channel done with "status=N" and the
# command's output.  The caller sets $work (channel sockets in $work/ep) and
# defines fail().

# guest_plan PREAMBLE: the executor's script; PREAMBLE (variables, helper
# functions) runs first.  $VS is the guest's virtio-serial port "bench.0".
guest_plan() {
    printf '%s\n' "$1" \
        'VS=/dev/$(basename "$(dirname "$(grep -l "^bench.0$" /sys/class/virtio-ports/*/name)")")' \
        'echo status=0 >/dev/vmchannel/done     # booted' \
        'while cmd=$(cat /dev/vmchannel/go) && [ "$cmd" != quit ]; do' \
        '    status=0' \
        '    eval "$cmd" >/tmp/step.out 2>&1 || status=$?' \
        '    { echo "status=$status"; cat /tmp/step.out; } >/dev/vmchannel/done' \
        'done'
}

# guest_start CMD: the guest starts CMD.  guest_wait: its output, once it has
# finished; a failure fails the run.  guest CMD: both.  guest_answer: its
# output, and whether it succeeded (the whole answer in $work/answer).
guest_start() { printf '%s' "$1" | socat -u - "UNIX-CONNECT:$work/ep/go.sock"; }
guest_answer() {
    socat -u "UNIX-CONNECT:$work/ep/done.sock" - >"$work/answer"
    tail -n +2 "$work/answer"
    [ "$(head -n 1 "$work/answer")" = status=0 ]
}
guest_wait() {
    guest_answer || { cat "$work/answer" >&2; fail "the guest's step failed"; }
}
guest() { guest_start "$1"; guest_wait; }

# guest_booted XFER: waits until the executor has said it runs.
guest_booted() {
    "$1" wait --wait 120 "$work/ep/go.sock"
    "$1" wait --wait 120 "$work/ep/done.sock"
    guest_wait >/dev/null
}
