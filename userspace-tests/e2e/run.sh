#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# End-to-end tests: real Debian guest kernels under QEMU through scripts/vm-run,
# vmchannel.ko in the guest, vmchanneld on the host.  One line per test,
# "PASS <label> <test>" or "FAIL <label> <test>: why", then "N passed, N failed";
# the label is the kernel, and "<kernel>/microvm" on --machine microvm,
# "<kernel>/arm64" on --arch arm64 (QEMU's virt machine).
#
#   userspace-tests/e2e/run.sh [--kernel 6.1|6.12|sid]... [--machine q35|microvm]
#                              [--arch x86_64|arm64] [--budget SECS] [--no-asan] [TEST]...
#
# arm64 runs a core subset by default (arm64_tests below).
# A test that cannot apply to the machine or the kernel (the table
# cannot_apply below) is not run there; named on the command line, it prints
# "SKIP <label> <test>: why" and counts neither as passed nor as failed.
#
# vmchanneld runs as its ASan/UBSan build (vm-run --asan) unless --no-asan: a
# sanitizer report, or vmchanneld exiting badly, fails the test (vm-run exits
# 123).  The whole run has a deadline (--budget, default VMC_E2E_BUDGET or
# 3600 s): no guest runs past it, and tests not started by then FAIL as
# skipped.  A test leaves nothing behind: its vm-run is stopped (which stops
# its QEMU and vmchanneld by PID), its host helpers are killed by PID, and the
# PIDs vm-run recorded are checked to be gone.
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VM_RUN=$TOP/scripts/vm-run
XFER=$TOP/userspace-tests/tools/vmc-xfer
PROBE=$TOP/userspace-tests/tools/vmc-probe
WAIT=120        # seconds a host program waits for a channel socket
TIMEOUT=300     # seconds a guest may run
budget=${VMC_E2E_BUDGET:-3600}
asan=1
machine=q35
arch=x86_64

# Tests that cannot apply to a platform (the label's part after the kernel) or
# to a kernel: "<platform or kernel> <test glob> <why>".
cannot_apply=(
    "microvm unplug microvm has no device unplug (QEMU: \"unplug not supported by microvm\")"
    "microvm sd_* the systemd image boots from a virtio-blk-pci disk (microvm has no PCI; sd_suspend needs q35's S3 too)"
    "q35 legacy_mmio it tests virtio-mmio's legacy interface (q35's device is on PCI)"
    "sid sd_* the systemd guest is Debian 12, whose DKMS builds the module for 6.1 and 6.12 only"
    "arm64 sd_* the systemd image (scripts/systemd-image) is x86_64 only"
    "arm64 legacy_mmio it tests virtio-mmio's legacy interface (virt's device is on PCI)"
)

# why_not_applicable KERNEL TEST: prints why TEST cannot run on KERNEL on this
# platform, or fails.
why_not_applicable() {
    local entry key glob
    for entry in "${cannot_apply[@]}"; do
        read -r key glob _ <<<"$entry"
        # shellcheck disable=SC2053 # the glob is a pattern
        if { [ "$key" = "${platform:-q35}" ] || [ "$key" = "$1" ]; } && [[ $2 == $glob ]]; then
            printf '%s\n' "${entry#"$key $glob "}"
            return 0
        fi
    done
    return 1
}

kernels=()
tests=()
while [ $# -gt 0 ]; do
    case $1 in
    --kernel) kernels+=("$2"); shift 2 ;;
    --machine) machine=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --no-asan) asan=0; shift ;;
    *) tests+=("$1"); shift ;;
    esac
done
[[ $budget =~ ^[0-9]+$ ]] || { echo "run.sh: --budget needs seconds" >&2; exit 2; }
deadline=$((SECONDS + budget))
if [ ${#kernels[@]} -eq 0 ]; then
    kernels=(6.1 6.12)
    [ "$arch" = x86_64 ] || kernels=(6.1)       # arm64: the one kernel provisioned
fi
all_tests=(sigterm qemu_restart h2g_short g2h_short h2g_16mib g2h_16mib slow_64mib echo_1mib channels_256 device_reset sighup_reload connect_endpoint stdio_endpoint hotplug sysfs uevents async host_wait signals sessions agent exclusive isolation removal two_devices unplug
           hostile_table hostile_rx hostile_credit hostile_count hostile_generation
           sd_links sd_bindsto sd_agent sd_login
           reopen_slow_reader pause_resume loss_reported concurrent_writers every_eof sd_suspend
           hotplug_paused legacy_mmio upgrade stop_delivers busy_poll)
# arm64 guests run under cross-ISA TCG: a core subset that fits make check's
# time budget, chosen for what differs on arm64 (the driver's endianness,
# alignment and DMA/cache assumptions, a different PCI host bridge and
# interrupt controller): the data path both ways, short and 16 MiB (ring
# and buffer handling), an echo with byte counters (credit accounting), a
# device reset and a QEMU restart (teardown and a fresh probe), hostile rx
# messages (header parsing of untrusted bytes), every end of file (the EOF
# window), QMP stop and cont mid-stream, and 258 channels (the whole
# configuration window read through config space).
arm64_tests=(h2g_short g2h_short h2g_16mib g2h_16mib echo_1mib device_reset qemu_restart
             hostile_rx every_eof pause_resume channels_256)
# The platform: "" for the default q35, else what labels add to the kernel.
default_tests=("${all_tests[@]}")
case $arch/$machine in
x86_64/q35) platform= ;;
x86_64/microvm) platform=microvm ;;
arm64/q35) platform=arm64 default_tests=("${arm64_tests[@]}") ;;  # virt (--machine not given)
arm64/*) echo "run.sh: arm64 guests run on virt only (no --machine)" >&2; exit 2 ;;
x86_64/*) echo "run.sh: --machine is q35 or microvm" >&2; exit 2 ;;
*) echo "run.sh: --arch is x86_64 or arm64" >&2; exit 2 ;;
esac
# Named tests run, or print SKIP; by default those that apply run (per kernel,
# in the loop at the end).
named_tests=${#tests[@]}
[ ${#tests[@]} -gt 0 ] || tests=("${default_tests[@]}")

# The host's vmchannelctl too: tests drive the daemon with it (vm-run builds
# only the daemon it runs).
make -s -C "$TOP/userspace-tests/tools" >/dev/null && make -s -C "$TOP/host" >/dev/null ||
    { echo "FAIL build test tools and host programs"; exit 1; }
# The systemd guests' image (scripts/systemd-image; minutes when it must be
# made) is made here, not inside a test, whose host side waits only WAIT
# seconds for the guest.
needs_image=0
for kernel in "${kernels[@]}"; do
    for t in "${tests[@]}"; do
        [[ $t == sd_* ]] && ! why_not_applicable "$kernel" "$t" >/dev/null && needs_image=1
    done
done
if [ "$needs_image" = 1 ]; then
    "$TOP/scripts/systemd-image" >/dev/null || echo "run.sh: no systemd image: the sd_* tests will fail" >&2
fi

work=$(mktemp -d /tmp/vmc-e2e.XXXXXX)
passed=0
failed=0
guest_pid=
bg_pids=()      # host helpers a test started in the background

# stop_test: stops what the current test started, by PID: its vm-run (whose
# exit trap stops its QEMU and vmchanneld) and its background helpers.
stop_test() {
    local pid
    for pid in "${bg_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    if [ -n "$guest_pid" ] && kill -0 "$guest_pid" 2>/dev/null; then
        kill "$guest_pid" 2>/dev/null
    fi
    for pid in "${bg_pids[@]}" $guest_pid; do
        wait "$pid" 2>/dev/null
    done
    bg_pids=()
    qmp_close
}

# left_behind: the QEMU and vmchanneld PIDs vm-run recorded that still run
# (checked by their command line, not to mistake a reused PID); kills them.
left_behind() {
    local f pid found=
    for f in "$work"/pids/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null) || continue
        case $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") in
        *qemu-system*|*vmchanneld*)
            found+=" ${f##*/}=$pid"
            kill -KILL "$pid" 2>/dev/null ;;
        esac
    done
    [ -z "$found" ] || { echo "left behind:$found"; return 1; }
}
trap 'stop_test; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# guest KERNEL GUEST-COMMAND: starts a guest serving channel "t" (and "echo",
# and any in $extra_channels) in the background; its output goes to
# $work/guest.out, its status to $work/guest.status.
extra_channels=()
extra_vm_args=()
# vm-run's PID is $guest_pid (stop_test stops it); it writes the PIDs of QEMU
# and vmchanneld to $work/pids.  A guest may run TIMEOUT seconds, and not past
# the run's deadline.
guest() {
    local kernel=$1 limit=$TIMEOUT
    shift
    rm -rf "$work/ep" "$work/guest.out" "$work/guest.status" "$work/pids"
    mkdir -p "$work/ep" "$work/pids"
    [ $((deadline - SECONDS)) -lt "$limit" ] && limit=$((deadline - SECONDS))
    [ "$limit" -gt 0 ] || limit=1
    local -a asan_arg=()
    [ "$asan" = 1 ] && asan_arg=(--asan)
    local -a platform_args=(--machine "$machine")
    [ "$arch" = x86_64 ] || platform_args=(--arch "$arch")
    "$VM_RUN" --kernel "$kernel" "${platform_args[@]}" --timeout "$limit" --endpoint-dir "$work/ep" \
        --pid-dir "$work/pids" "${asan_arg[@]}" \
        --channel t --channel echo "${extra_channels[@]}" "${extra_vm_args[@]}" -- "$@" \
        >"$work/guest.out" 2>&1 </dev/null &
    guest_pid=$!
}

# guest_done: waits for the guest and succeeds when its command exited 0 (and
# vm-run saw vmchanneld end well).
guest_done() {
    local status=0
    wait "$guest_pid" || status=$?
    guest_pid=
    echo "$status" >"$work/guest.status"
    [ "$status" = 0 ]
}

# The hash line vmc-xfer printed for a direction ("sent"/"received").
hash_of() { sed -n "s/^$1 \(bytes=[0-9]* hash=[0-9a-f]*\)\$/\1/p" "$2" | tail -n1; }

result() {                              # result LABEL TEST STATUS [WHY]
    if [ "$3" = 0 ]; then
        echo "PASS $1 $2"
        passed=$((passed + 1))
    else
        echo "FAIL $1 $2: $4"
        sed 's/^/    guest: /' "$work/guest.out" 2>/dev/null | tail -n 20
        failed=$((failed + 1))
    fi
}

# Host writes a line and closes; the guest's cat prints it and sees end of file.
t_h2g_short() {
    local msg="hello from the host $RANDOM"
    guest "$1" cat /dev/vmchannel/t
    "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" &&
        printf '%s\n' "$msg" | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(cat "$work/guest.out")" = "$msg" ] || { why="guest printed something else"; return 1; }
}

# The guest echoes a line into the node; the host reads it, then end of file.
t_g2h_short() {
    local msg="hello from the guest $RANDOM"
    guest "$1" sh -c "echo '$msg' > /dev/vmchannel/t"
    "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" &&
        socat -u "UNIX-CONNECT:$work/ep/t.sock" - >"$work/host.out"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(cat "$work/host.out")" = "$msg" ] || { why="host read '$(head -c 200 "$work/host.out")'"; return 1; }
}

# 16 MiB host -> guest, verified byte by byte in the guest, checksums compared.
t_h2g_16mib() {
    guest "$1" "$XFER" recv --verify --seed 7 /dev/vmchannel/t
    "$XFER" send --bytes 16M --seed 7 --wait "$WAIT" "$work/ep/t.sock" >"$work/host.out" ||
        { why="host send failed"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local sent got
    sent=$(hash_of sent "$work/host.out")
    got=$(hash_of received "$work/guest.out")
    [ -n "$sent" ] && [ "$sent" = "$got" ] || { why="sent '$sent', received '$got'"; return 1; }
}

# 16 MiB guest -> host, verified byte by byte on the host, checksums compared.
t_g2h_16mib() {
    guest "$1" "$XFER" send --bytes 16M --seed 9 /dev/vmchannel/t
    "$XFER" recv --verify --seed 9 --wait "$WAIT" "$work/ep/t.sock" >"$work/host.out" ||
        { why="host receive failed: $(tail -n1 "$work/host.out")"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local sent got
    sent=$(hash_of sent "$work/guest.out")
    got=$(hash_of received "$work/host.out")
    [ -n "$sent" ] && [ "$sent" = "$got" ] || { why="sent '$sent', received '$got'"; return 1; }
}

# 64 MiB each way with a slow reader on the far side: the writer is held back
# (backpressure through the guest ring, vmchanneld and the socket), nothing is
# lost, checksums equal.
t_slow_64mib() {
    guest "$1" sh -c "$XFER recv --verify --slow --seed 21 /dev/vmchannel/t &&
        $XFER send --bytes 64M --seed 22 /dev/vmchannel/echo"
    "$XFER" send --bytes 64M --seed 21 --wait "$WAIT" "$work/ep/t.sock" >"$work/host.out" ||
        { why="host send failed"; return 1; }
    "$XFER" recv --verify --slow --seed 22 --wait "$WAIT" "$work/ep/echo.sock" >>"$work/host.out" ||
        { why="host receive failed: $(tail -n1 "$work/host.out")"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local h2g g2h
    h2g=$(hash_of received "$work/guest.out")
    g2h=$(hash_of received "$work/host.out")
    [ "$h2g" = "$(hash_of sent "$work/host.out")" ] && [ "${h2g%% *}" = bytes=67108864 ] &&
        [ "$g2h" = "$(hash_of sent "$work/guest.out")" ] && [ "${g2h%% *}" = bytes=67108864 ] ||
        { why="host: $(tr '\n' '|' <"$work/host.out") guest: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# The README's debugging idiom: the guest echoes with cat; 1 MiB comes back
# intact.  vmchannelctl stats then counts exactly that MiB each way, one
# host connection and no loss (the guest waits on "t" meanwhile).
t_echo_1mib() {
    guest "$1" sh -c 'exec 3<>/dev/vmchannel/echo; cat <&3 >&3; exec 3<&-; cat /dev/vmchannel/t'
    "$XFER" echo-check --bytes 1M --seed 11 --wait "$WAIT" "$work/ep/echo.sock" >"$work/host.out" ||
        { why="echo check failed: $(tail -n2 "$work/host.out" | tr '\n' ' ')"; return 1; }
    local stats json
    stats=$(control stats echo) && json=$(control --json stats) ||
        { why="vmchannelctl stats failed"; return 1; }
    echo done | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local want
    for want in name=echo bytes_from_guest=1048576 bytes_to_host=1048576 bytes_to_guest=1048576 \
        host_connections=1 lost_bytes=0 over_credit_bytes=0 guest_errors=0; do
        [[ " $stats " = *" $want "* ]] || { why="stats lack $want: $stats"; return 1; }
    done
    [[ $json = '{"channels": [{"name": "t", '*'{"name": "echo", '*'"bytes_to_host": 1048576, '* ]] ||
        { why="stats --json: ${json:0:300}"; return 1; }
    expect_output done
}

# 256 more channels in one device: every node appears, and the last table
# entry carries data (the configuration window reaches every entry).
t_channels_256() {
    local i msg="to the last of 258 channels"
    local -a extra_channels=()
    for i in $(seq 0 255); do
        extra_channels+=(--channel "c$i")
    done
    guest "$1" sh -c 'ls /dev/vmchannel | wc -l; cat /dev/vmchannel/c255'
    "$XFER" wait --wait "$WAIT" "$work/ep/c255.sock" &&
        printf '%s\n' "$msg" | socat -u - "UNIX-CONNECT:$work/ep/c255.sock"
    local listed
    listed=$(control list | tr '\n' ' ')
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(cat "$work/guest.out")" = "$(printf '258\n%s' "$msg")" ] ||
        { why="guest printed something else"; return 1; }
    [ "$listed" = "t echo $(seq -f 'c%g' -s ' ' 0 255) " ] ||
        { why="vmchannelctl list: ${listed:0:200}..."; return 1; }
}

# control COMMAND [NAME]: vmchannelctl on vmchanneld's control socket.
control() {
    "$XFER" wait --wait "$WAIT" "$work/ep/control" &&
        "$TOP/host/vmchannelctl" --control-socket "$work/ep/control" "$@"
}

# When the guest is done, vm-run stops vmchanneld with SIGTERM: it exits 0
# and removes every socket it made (channels and control).
t_sigterm() {
    guest "$1" true
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    grep -q "vmchanneld exited" "$work/guest.out" && { why="$(cat "$work/guest.out")"; return 1; }
    [ -z "$(ls -A "$work/ep")" ] || { why="left behind: $(ls -A "$work/ep" | tr '\n' ' ')"; return 1; }
}

# QEMU exits and a new QEMU connects to the same vmchanneld (a VM restart):
# the device works again from a clean state, the same host sockets serve it.
t_qemu_restart() {
    local -a extra_vm_args=(--boots 2)
    guest "$1" sh -c '[ "$(cat /run/vm-run/boot)" = 1 ] || echo ready >/dev/vmchannel/echo
        cat /dev/vmchannel/t'
    "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" &&
        printf 'first QEMU\n' | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    # Only once the second guest runs: bytes sent earlier would reach the first.
    guest_ready && printf 'second QEMU\n' | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    expect_output "first QEMU
second QEMU"
}

# The driver goes away and comes back in the same boot (device reset, then a
# new probe): the open session ends, vmchanneld starts afresh, data flows.
t_device_reset() {
    guest "$1" sh -c 'exec 3</dev/vmchannel/t; echo ready >/dev/vmchannel/echo
        head -c 6 <&3; echo
        exec 3<&-
        rmmod vmchannel && insmod '"$TOP"'/build/driver-$(uname -r)/vmchannel.ko &&
        echo ready >/dev/vmchannel/echo && cat /dev/vmchannel/t'
    guest_ready && printf 'before' | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_ready && printf 'after\n' | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    expect_output "before
after"
}

# vmchanneld --config FILE; SIGHUP reads the file again: a channel dropped
# from it disappears in the guest, a channel added appears.
t_sighup_reload() {
    printf '# e2e\nchannel first\n' >"$work/vmc.conf"
    local -a extra_vm_args=("--daemon-arg=--config=$work/vmc.conf")
    guest "$1" sh -c 'echo "at boot:" $(ls /dev/vmchannel); echo ready >/dev/vmchannel/echo
        '"$XFER"' wait --wait 60 /dev/vmchannel/second && echo "after SIGHUP:" $(ls /dev/vmchannel)'
    guest_ready || return 1
    printf 'channel second\n' >"$work/vmc.conf"
    # vm-run recorded vmchanneld's PID.
    local daemon
    daemon=$(cat "$work/pids/vmchanneld1.pid" 2>/dev/null) &&
        kill -HUP "$daemon" || { why="no vmchanneld to signal"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    expect_output "at boot: echo first t
after SIGHUP: echo second t"
}

# --channel NAME=connect:PATH: vmchanneld connects to a host service instead
# of listening.  The service starts only after the guest opened the channel;
# vmchanneld keeps trying, connects, and the two talk.
t_connect_endpoint() {
    local -a extra_channels=(--channel "svc=connect:$work/svc.sock")
    rm -f "$work/svc.sock" "$work/svc.got"
    guest "$1" sh -c 'exec 3<>/dev/vmchannel/svc; echo ready >/dev/vmchannel/echo
        echo "from the guest" >&3; head -n1 <&3'
    guest_ready || return 1
    timeout 120 socat "UNIX-LISTEN:$work/svc.sock" \
        SYSTEM:"head -n1 >'$work/svc.got'; echo 'from the service'" ||
        { why="the service saw no connection"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(cat "$work/svc.got")" = "from the guest" ] || { why="service got '$(cat "$work/svc.got")'"; return 1; }
    expect_output "from the service"
}

# --channel NAME=stdio: vmchanneld's stdin goes to the guest, the guest's
# bytes to its stdout, which ends when the guest closes the channel.
t_stdio_endpoint() {
    local -a extra_vm_args=(--daemon-arg=--channel=log=stdio --daemon-stdio "$work/stdio")
    rm -f "$work/stdio.in" "$work/stdio.out"
    guest "$1" sh -c 'exec 3<>/dev/vmchannel/log; echo ready >/dev/vmchannel/echo
        echo "from the guest" >&3; head -n1 <&3'
    guest_ready || return 1
    echo "from stdin" >"$work/stdio.in"
    local got
    got=$(timeout 120 cat "$work/stdio.out")
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$got" = "from the guest" ] || { why="stdout got '$got'"; return 1; }
    expect_output "from stdin"
}

# A channel added while the guest runs appears as a node and carries data; when
# it is removed, a reader blocked on it wakes with an error and the node goes.
t_hotplug() {
    local msg="hot-added $RANDOM"
    guest "$1" sh -c "$XFER wait --wait $WAIT /dev/vmchannel/late &&
        cat /dev/vmchannel/late && echo done > /dev/vmchannel/t &&
        { cat /dev/vmchannel/late; echo \"rc=\$?\"; } &&
        if [ -e /dev/vmchannel/late ]; then echo still-there; else echo gone; fi"
    control add late || { why="add refused"; return 1; }
    "$XFER" wait --wait "$WAIT" "$work/ep/late.sock" &&
        printf '%s\n' "$msg" | socat -u - "UNIX-CONNECT:$work/ep/late.sock"
    # The guest has read it when it writes to t; only then remove.
    [ "$(socat -u "UNIX-CONNECT:$work/ep/t.sock" -)" = done ] || { why="no sync"; return 1; }
    control remove late || { why="remove refused"; return 1; }
    control remove late 2>/dev/null && { why="removing it twice succeeded"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(head -n1 "$work/guest.out")" = "$msg" ] || { why="data lost"; return 1; }
    grep -qx 'rc=1' "$work/guest.out" || { why="blocked reader did not fail"; return 1; }
    [ "$(tail -n1 "$work/guest.out")" = gone ] || { why="node still there"; return 1; }
}

# /sys/class/vmchannel/<name>/: name, id, host_connected while a host program
# is connected and after it left, byte counters.
t_sysfs() {
    local s=/sys/class/vmchannel/t
    # One open for the whole session: a close would end it (docs/design.md).
    guest "$1" sh -c "cat $s/name $s/id; exec 3</dev/vmchannel/t; head -c 5 <&3; echo;
        cat $s/host_connected; echo go > /dev/vmchannel/echo;
        cat <&3; cat $s/host_connected $s/rx_bytes $s/tx_bytes"
    mkfifo "$work/fifo"
    "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" &&
        socat -u - "UNIX-CONNECT:$work/ep/t.sock" <"$work/fifo" &
    local holder=$!
    exec 8>"$work/fifo"
    printf hello >&8
    # The guest has checked host_connected when it says "go" on echo.
    [ "$(socat -u "UNIX-CONNECT:$work/ep/echo.sock" -)" = go ] || why="no sync"
    exec 8>&-
    wait "$holder"
    rm -f "$work/fifo"
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    [ "$(cat "$work/guest.out")" = "$(printf 't\n1\nhello\n1\n0\n5\n0')" ] ||
        { why="guest printed $(tr '\n' ' ' <"$work/guest.out")"; return 1; }
}

# guest_ready: waits until a vmc-probe in the guest said "ready" on channel echo.
guest_ready() {
    "$XFER" wait --wait "$WAIT" "$work/ep/echo.sock" &&
        [ "$(socat -u "UNIX-CONNECT:$work/ep/echo.sock" -)" = ready ] ||
        { why="the guest never said ready"; return 1; }
}

# expect_output TEXT: the guest printed exactly TEXT.
expect_output() {
    [ "$(cat "$work/guest.out")" = "$1" ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# A host program connecting and leaving each send a "change" uevent for the
# node that says the new state, for udev rules to use.
t_uevents() {
    guest "$1" "$PROBE" uevents --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready && printf hi | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    expect_output "change VMCHANNEL_HOST_CONNECTED=1
change VMCHANNEL_HOST_CONNECTED=0"
}

# fasync: SIGIO when bytes arrive; FIONREAD counts them.
t_async() {
    guest "$1" "$PROBE" async --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready && printf hello | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    expect_output "sigio fionread=5"
}

# An agent waits for the host program without spinning, and sees the state.
t_host_wait() {
    guest "$1" "$PROBE" host-wait --ready /dev/vmchannel/echo /dev/vmchannel/t
    # Connected while the guest sleeps in the ioctl; stays until the guest closes.
    guest_ready && socat -u "UNIX-CONNECT:$work/ep/t.sock" - >/dev/null
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    expect_output "before: connected=0 removed=0 connections=0 pollout=0
nonblocking wait: Resource temporarily unavailable
nonblocking read: Resource temporarily unavailable
nonblocking write: Resource temporarily unavailable
after: connected=1 removed=0 connections=1 pollout=1"
}

# Signals interrupt a blocked read and write; nothing is lost or duplicated.
t_signals() {
    guest "$1" "$PROBE" signals --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready && printf hello | socat -t 60 - "UNIX-CONNECT:$work/ep/t.sock" >"$work/host.out"
    guest_done || { why="guest exited $(cat "$work/guest.status") $why"; return 1; }
    expect_output "blocked read: Interrupted system call
blocked write: Interrupted system call
then read: hello" || return 1
    [ "$(cat "$work/host.out")" = after ] || { why="host read '$(cat "$work/host.out")'"; return 1; }
}

# Two host connections in turn: the guest reads the first one's bytes, one
# end of file, then the second one's: no byte crosses sessions unnoticed.
t_sessions() {
    guest "$1" sh -c 'exec 3</dev/vmchannel/t; echo ready >/dev/vmchannel/echo
        cat <&3; echo "<eof>"; cat <&3; echo "<eof>"'
    guest_ready || return 1
    printf 'first\n' | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    printf 'second\n' | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    expect_output "first
<eof>
second
<eof>"
}

# An agent written for virtio-serial (qemu-ga's loop: O_NONBLOCK, poll for
# POLLIN|POLLHUP, read, end of file = client left) works unmodified: it
# echoes two host clients in turn, and never wakes for nothing while no
# client is connected (virtio-serial's POLLHUP makes such loops spin).
t_agent() {
    guest "$1" "$PROBE" agent --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready || return 1
    local i
    for i in 1 2; do
        socat "UNIX-CONNECT:$work/ep/t.sock" \
            SYSTEM:"echo request-$i; head -n1 >'$work/reply$i'"
    done
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(cat "$work/reply1")" = request-1 ] && [ "$(cat "$work/reply2")" = request-2 ] ||
        { why="replies '$(cat "$work/reply1")' '$(cat "$work/reply2")'"; return 1; }
    expect_output "served 2 clients, 0 empty wake-ups"
}

# One reader and one writer: "exec 3<>" and "cat x > x" work, a second
# reader or writer gets EBUSY; closing frees the slot.
t_exclusive() {
    guest "$1" sh -c 'n=/dev/vmchannel/t
        exec 3<$n; echo "second reader: $( (exec 4<$n) 2>&1 | sed "s/.*: //")"
        exec 5>$n; echo "second writer: $( (exec 6>$n) 2>&1 | sed "s/.*: //")"
        echo "rdwr: $( (exec 7<>$n) 2>&1 | sed "s/.*: //")"
        exec 3<&- 5>&-; exec 8<>$n && echo "after close: rdwr ok"'
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    expect_output "second reader: Device or resource busy
second writer: Device or resource busy
rdwr: Device or resource busy
after close: rdwr ok"
}

# A guest reader that stops stalls only its own channel: with t's receive
# window (512 KiB) full, 16 MiB still cross channel b; t holds no more than
# its window meanwhile; then t's megabyte arrives intact.  (Throughput ratios
# are the benchmark's job.)
t_isolation() {
    local -a extra_channels=(--channel b)
    guest "$1" sh -c "exec 3</dev/vmchannel/t; echo ready >/dev/vmchannel/echo
        $XFER recv --verify --seed 5 /dev/vmchannel/b
        echo stalled-at \$(cat /sys/class/vmchannel/t/rx_bytes)
        $XFER recv --verify --seed 3 - <&3"
    guest_ready || return 1
    "$XFER" send --bytes 1M --seed 3 "$work/ep/t.sock" >"$work/host-t.out" &
    local t_sender=$!
    "$XFER" send --bytes 16M --seed 5 "$work/ep/b.sock" >"$work/host.out" ||
        { why="host send on b failed"; return 1; }
    wait "$t_sender" || { why="host send on t failed"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local b_sent t_sent stalled
    b_sent=$(hash_of sent "$work/host.out")
    t_sent=$(hash_of sent "$work/host-t.out")
    stalled=$(sed -n 's/^stalled-at //p' "$work/guest.out")
    [ -n "$b_sent" ] && [ "$(sed -n 's/^received //p' "$work/guest.out" | sed -n 1p)" = "$b_sent" ] ||
        { why="channel b: sent '$b_sent', guest: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
    [ -n "$t_sent" ] && [ "$(sed -n 's/^received //p' "$work/guest.out" | sed -n 2p)" = "$t_sent" ] ||
        { why="channel t: sent '$t_sent', guest: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
    [ -n "$stalled" ] && [ "$stalled" -gt 0 ] && [ "$stalled" -le 524288 ] ||
        { why="t had received '$stalled' bytes while stalled"; return 1; }
}

# The host removes a channel while a poller sleeps on it: POLLHUP|POLLERR,
# then ENODEV from read, write and the wait ioctl; the node is gone.
t_removal() {
    guest "$1" "$PROBE" removal --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready && control remove t || { why="remove refused $why"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    expect_output "poll: POLLHUP POLLERR
read: No such device
write: No such device
wait for host: No such device
state: connected=0 removed=1 connections=0 pollout=0
node: No such file or directory"
}

# Two devices offer the same channel names: the first to probe keeps the
# plain node, the other gets "<name>@<virtio device>"; each carries its own data.
t_two_devices() {
    local -a extra_vm_args=(--devices 2)
    guest "$1" sh -c 'echo nodes: $(ls /dev/vmchannel)
        for n in /dev/vmchannel/t /dev/vmchannel/t@virtio*; do echo "$(cat $n) from ${n#/dev/vmchannel/}"; done'
    "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" && "$XFER" wait --wait "$WAIT" "$work/ep/dev2/t.sock" &&
        { printf one | socat -u - "UNIX-CONNECT:$work/ep/t.sock" &
          printf two | socat -u - "UNIX-CONNECT:$work/ep/dev2/t.sock"; wait $!; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    grep -Eqx 'nodes: echo echo@virtio[0-9]+ t t@virtio[0-9]+' "$work/guest.out" &&
        [ "$(sed -n 's/ from .*//p' "$work/guest.out" | sort | tr '\n' ' ')" = "one two " ] &&
        [ "$(grep -c ' from t$' "$work/guest.out")" = 1 ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# QEMU unplugs the whole device (device_del) while a reader and a writer are
# blocked on it: both wake with ENODEV, the nodes go, and the module, which
# refused to unload while files were open, unloads once they are closed.
t_unplug() {
    local -a extra_channels=(--channel w) extra_vm_args=(--qmp "$work/qmp.sock")
    guest "$1" bash -c 'n=/dev/vmchannel
        # Waits (bounded) until process $1 sleeps in system call $2.
        sleeping_in() {
            local i
            for ((i = 0; i < 600; i++)); do
                [ "$(cut -d" " -f1 /proc/$1/syscall)" = "$2" ] && return 0
                sleep 0.1
            done
            return 1
        }
        cat $n/t >/tmp/reader.out 2>&1 & reader=$!
        head -c 1M /dev/zero 2>/tmp/writer.out >$n/w & writer=$!
        sleeping_in $reader 0 && sleeping_in $writer 1 || { echo not blocked; exit 1; }
        rmmod vmchannel 2>/dev/null && echo "rmmod while open: done" || echo "rmmod while open: refused"
        echo ready >$n/echo
        wait $reader; echo "reader: $? $(cat /tmp/reader.out)"
        wait $writer; echo "writer: $? $(cat /tmp/writer.out)"
        echo "nodes:" $(ls $n 2>/dev/null)
        rmmod vmchannel && echo "rmmod after close: done"'
    guest_ready || return 1
    printf '%s\n' '{"execute":"qmp_capabilities"}' \
        '{"execute":"device_del","arguments":{"id":"vmchannel0"}}' |
        socat -t 5 - "UNIX-CONNECT:$work/qmp.sock" >"$work/qmp.out"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    grep -q '"return"' "$work/qmp.out" || { why="device_del: $(cat "$work/qmp.out")"; return 1; }
    expect_output "rmmod while open: refused
reader: 1 cat: /dev/vmchannel/t: No such device
writer: 1 head: error writing 'standard output': No such device
nodes:
rmmod after close: done"
}

# The hostile device (vmchanneld --fault).  The guest lists its nodes, proves
# channel t still works, and prints the driver's log lines.
hostile_guest() {
    local kernel=$1 c
    shift
    local -a extra_vm_args=()
    for c in "$@"; do
        extra_vm_args+=("--daemon-arg=--fault=$c")
    done
    guest "$kernel" sh -c 'echo nodes: $(ls /dev/vmchannel 2>/dev/null)
        [ -e /dev/vmchannel/t ] && echo "t: $(cat /dev/vmchannel/t)"
        dmesg | grep -E "vmchannel|virtio"'
    if [ -n "$alive" ]; then
        "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" &&
            printf '%s' "$alive" | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    fi
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
}

# expect_lines PATTERN N: the guest printed exactly N lines matching PATTERN.
expect_lines() {
    local n
    n=$(grep -c -- "$1" "$work/guest.out")
    [ "$n" = "$2" ] || { why="$n lines match '$1', expected $2"; return 1; }
}

# Bad table entries: one log line each, no node, the good channels unharmed.
# "victim" is the last real channel, whose id and name the dup cases reuse:
# both sides of a clash are refused.
t_hostile_table() {
    local alive=alive
    local -a extra_channels=(--channel victim)
    hostile_guest "$1" name-empty name-unterminated name-dot name-dotdot name-slash \
        name-nonprint name-trailing id-zero flags dup-id dup-name || return 1
    grep -qx "nodes: echo t" "$work/guest.out" || { why="nodes: $(grep nodes: "$work/guest.out")"; return 1; }
    grep -qx "t: alive" "$work/guest.out" || { why="channel t did not work"; return 1; }
    expect_lines "ignoring channel entry" 12 &&
        expect_lines "invalid name: empty" 1 &&
        expect_lines "invalid name: not NUL-terminated" 1 &&
        expect_lines 'invalid name: "." or ".."' 2 &&
        expect_lines "invalid name: byte outside" 2 &&
        expect_lines "invalid name: bytes after the NUL" 1 &&
        expect_lines "channel id 0" 1 &&
        expect_lines "reserved flags set" 1 &&
        expect_lines "duplicate channel id" 2 &&
        expect_lines "duplicate name" 1
}

# Bad messages on rxq: one log line each, dropped, the channel's data intact.
t_hostile_rx() {
    local alive=alive
    hostile_guest "$1" rx-used-len rx-short rx-payload-len rx-type rx-channel rx-empty-data ||
        return 1
    grep -qx "t: alive" "$work/guest.out" || { why="channel t did not work"; return 1; }
    expect_lines "rx: used length" 2 &&
        expect_lines "rx: payload length 1000, used 32" 1 &&
        expect_lines "rx: bad message type 30583" 1 &&
        expect_lines "rx: bad message type 1 (length 0)" 1 &&
        expect_lines "rx: message for unknown channel" 1
}

# Host bytes beyond the guest's credit: the excess is dropped with a log line
# (the ring never overflows) and the stream still ends.
t_hostile_credit() {
    local -a extra_vm_args=(--daemon-arg=--fault=rx-over-credit)
    guest "$1" sh -c 'exec 3</dev/vmchannel/t; echo ready >/dev/vmchannel/echo
        cat /dev/vmchannel/echo >/dev/null; echo received $(wc -c <&3)
        dmesg | grep -c "beyond its credit"'
    guest_ready || return 1
    "$XFER" send --bytes 1M "$work/ep/t.sock" >/dev/null &&
        printf sent | socat -u - "UNIX-CONNECT:$work/ep/echo.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local got lines
    got=$(sed -n 's/^received //p' "$work/guest.out")
    lines=$(tail -n1 "$work/guest.out")
    [ -n "$got" ] && [ "$got" -lt 1048576 ] && [ "$lines" -ge 1 ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# A channel count beyond the limit, and a table that never holds still:
# one log line, no channels, no crash.
t_hostile_count() {
    local alive=
    hostile_guest "$1" count-huge || return 1
    grep -qx "nodes:" "$work/guest.out" || { why="nodes were created"; return 1; }
    expect_lines "device offers 65535 channels, more than [0-9]*: ignored" 1
}

t_hostile_generation() {
    local alive=
    hostile_guest "$1" generation-flap || return 1
    grep -qx "nodes:" "$work/guest.out" || { why="nodes were created"; return 1; }
    expect_lines "channel table unreadable or changing constantly" 1
}

# --- udev and systemd: a Debian 12 guest with systemd, udev and the guest
# packages installed with dpkg -i, the module built by DKMS and loaded by its
# modalias (vm-run --systemd, scripts/systemd-image).

# Two devices offering the same names: every node root:vmchannel 0660, and
# /dev/vmchannel/by-path/<PCI path>/<name> names each device's channel by its
# slot, whichever probed first: sorted by path, device 1's "t" comes first.
# The module that runs has the srcversion of the one DKMS installed for this
# kernel under updates/dkms (vm-run puts no vmchannel.ko in the systemd guest's
# initramfs: udev's coldplug loaded it by its modalias).
t_sd_links() {
    local -a extra_vm_args=(--systemd --devices 2)
    guest "$1" bash -c 'f=$(modinfo -F filename vmchannel)
        [ "$(cat /sys/module/vmchannel/srcversion)" = "$(modinfo -F srcversion vmchannel)" ] &&
            echo "module: $f loaded"
        cd /dev/vmchannel
        for n in t t@virtio* echo echo@virtio*; do stat -c "node %n %U:%G %a" "$n"; done
        echo links: by-path/*/t by-path/*/echo
        for l in by-path/*/t; do echo "$l -> $(readlink -f "$l")"; done
        echo read: $(for l in by-path/*/t; do cat "$l"; echo; done)
        echo units: $(systemctl is-active dev-vmchannel-t.device dev-vmchannel-echo.device)'
    "$XFER" wait --wait "$WAIT" "$work/ep/t.sock" && "$XFER" wait --wait "$WAIT" "$work/ep/dev2/t.sock" &&
        { printf one | socat -u - "UNIX-CONNECT:$work/ep/t.sock" &
          printf two | socat -u - "UNIX-CONNECT:$work/ep/dev2/t.sock"; wait $!; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local out=$work/guest.out
    grep -Eqx 'module: (/usr)?/lib/modules/[^ /]+/updates/dkms/vmchannel\.ko(\.xz)? loaded' "$out" ||
        { why="not DKMS's module: $(grep '^module' "$out")"; return 1; }
    [ "$(grep -c '^node .* root:vmchannel 660$' "$out")" = 4 ] ||
        { why="modes: $(grep '^node' "$out" | tr '\n' '|')"; return 1; }
    grep -Eqx 'links: by-path/pci-[0-9a-f:.-]+/t by-path/pci-[0-9a-f:.-]+/t by-path/pci-[0-9a-f:.-]+/echo by-path/pci-[0-9a-f:.-]+/echo' "$out" ||
        { why="$(grep '^links' "$out")"; return 1; }
    local targets nodes
    targets=$(sed -n 's|^by-path/[^ ]* -> ||p' "$out" | sort)
    nodes=$(sed -n 's|^node \(t[^ ]*\) .*|/dev/vmchannel/\1|p' "$out" | sort)
    [ "$(wc -l <<<"$nodes")" = 2 ] && [ "$targets" = "$nodes" ] ||
        { why="links do not lead to both nodes: $(grep ' -> ' "$out" | tr '\n' '|')"; return 1; }
    grep -qx 'read: one two' "$out" || { why="by-path order: $(grep '^read' "$out")"; return 1; }
    grep -qx 'units: active active' "$out" || { why="$(grep '^units' "$out")"; return 1; }
}

# A unit enabled with WantedBy= and BindsTo= the channel's device unit starts
# when vmchanneld hot-adds the channel and stops when it removes it.  The unit
# reports both through FIFOs, so the guest waits on the events themselves.
t_sd_bindsto() {
    local -a extra_vm_args=(--systemd)
    guest "$1" bash -c 'mkfifo /run/late-started /run/late-stopped
        cat >/etc/systemd/system/late-watch.service <<EOF
[Unit]
BindsTo=dev-vmchannel-late.device
After=dev-vmchannel-late.device
[Service]
ExecStart=/bin/sh -c "echo started >/run/late-started; exec sleep infinity"
ExecStopPost=/bin/sh -c "echo stopped >/run/late-stopped"
[Install]
WantedBy=dev-vmchannel-late.device
EOF
        systemctl daemon-reload && systemctl enable --quiet late-watch.service || exit 1
        echo "before add: $(systemctl is-active late-watch.service)"
        echo ready >/dev/vmchannel/echo
        read -r s </run/late-started; echo "$s: $(systemctl is-active late-watch.service)"
        echo up >/dev/vmchannel/echo
        read -r s </run/late-stopped; echo "$s"
        [ -e /dev/vmchannel/late ] && echo "node: still there" || echo "node: gone"'
    "$XFER" wait --wait "$WAIT" "$work/ep/echo.sock" &&
        [ "$(socat -u "UNIX-CONNECT:$work/ep/echo.sock" -)" = ready ] || { why="no sync"; return 1; }
    control add late || { why="add refused"; return 1; }
    [ "$(socat -u "UNIX-CONNECT:$work/ep/echo.sock" -)" = up ] || { why="unit did not start"; return 1; }
    control remove late || { why="remove refused"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(tr '\n' '|' <"$work/guest.out")" = "before add: inactive|started: active|stopped|node: gone|" ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# The example agent rule, copied into /etc/udev/rules.d as docs/agents.md says,
# starts vmchannel-agent@<name>.service (a DynamicUser in group vmchannel)
# for a hot-added channel; it echoes 256 KiB back to each of two host programs.
t_sd_agent() {
    local -a extra_vm_args=(--systemd)
    guest "$1" bash -c 'cp /usr/share/doc/vmchannel-guest/examples/61-vmchannel-agent.rules /etc/udev/rules.d/ &&
            udevadm control --reload || exit 1
        echo "before add: $(systemctl is-active vmchannel-agent@ag.service)"
        echo ready >/dev/vmchannel/echo
        cat /dev/vmchannel/t'
    "$XFER" wait --wait "$WAIT" "$work/ep/echo.sock" &&
        [ "$(socat -u "UNIX-CONNECT:$work/ep/echo.sock" -)" = ready ] || { why="no sync"; return 1; }
    control add ag || { why="add refused"; return 1; }
    # Twice: the agent's cat ends with the first host connection and its
    # unit (Restart=on-success) serves the second.
    local round
    for round in 1 2; do
        "$XFER" echo-check --bytes 256K --seed $round --wait "$WAIT" "$work/ep/ag.sock" >"$work/host.out" 2>&1 ||
            { why="echo $round: $(tr '\n' ' ' <"$work/host.out")"; break; }
    done
    printf done | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    [ -z "$why" ] || return 1
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$(tr '\n' '|' <"$work/guest.out")" = "before add: inactive|done" ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# From a login shell (su -l): a member of group vmchannel writes with echo and
# reads with cat; a user outside the group is refused.  Then, in the same boot
# (a systemd guest costs a minute), vmchanneld as make install-host
# (PREFIX=/usr/local) puts it in the guest, run by its units (sd-vmchanneld.sh): socket activated, READY with a status,
# user vmchanneld, sandboxed, sockets 0660 of group vmchanneld, control socket
# answering, SIGHUP handled, systemd-analyze security exposure below 3.0.
t_sd_login() {
    local -a extra_vm_args=(--systemd)
    local msg="to alice $RANDOM"
    rm -rf "$work/root"
    make -s -C "$TOP" install-host DESTDIR="$work/root" PREFIX=/usr/local >"$work/install.log" 2>&1 ||
        { why="make install-host: $(tail -n 3 "$work/install.log")"; return 1; }
    guest "$1" bash -c 'useradd -m -s /bin/bash -G vmchannel alice && useradd -m -s /bin/bash bob || exit 1
        su -l alice -c "echo hi from \$USER >/dev/vmchannel/t" || exit 1
        su -l alice -c "cat /dev/vmchannel/t" || exit 1
        su -l bob -c "echo hi from \$USER >/dev/vmchannel/t" 2>/dev/null && echo "bob: allowed" || echo "bob: refused"
        su -l bob -c "cat /dev/vmchannel/t" 2>/dev/null && echo "bob: allowed" || echo "bob: refused"
        cp -a /host'"$work"'/root/. / && bash /host'"$TOP"'/userspace-tests/e2e/sd-vmchanneld.sh'
    local got
    got=$("$XFER" wait --wait "$WAIT" "$work/ep/t.sock" && socat -u "UNIX-CONNECT:$work/ep/t.sock" -)
    [ "$got" = "hi from alice" ] || { why="host got '$got'"; return 1; }
    printf '%s\n' "$msg" | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local out exposure
    out=$(tr '\n' '|' <"$work/guest.out")
    [ "${out%%|state: *}" = "$msg|bob: refused|bob: refused" ] ||
        { why="guest printed: $out"; return 1; }
    [[ $out = *"|state: active|status: serving 0 channels in /run/vmchannel/vm1, sandboxed|"\
"user: vmchanneld|NoNewPrivs: 1|Seccomp: 2|"\
"socket /run/vmchannel/vm1.vhost.sock vmchanneld:vmchanneld 660|"\
"socket /run/vmchannel/vm1/control vmchanneld:vmchanneld 660|"\
"socket /run/vmchannel/vm1/c1.sock vmchanneld:vmchanneld 660|"\
"name=c1 state=IDLE host_connected=0|1|state: active|"\
"upgraded to /usr/local/bin/vmchanneld|upgrade: same pid|state: active|c1|"* ]] ||
        { why="vmchanneld units: $out"; return 1; }
    exposure=$(sed -n 's/^.*Overall exposure level for vmchanneld@vm1.service: \([0-9.]*\) .*$/\1/p' "$work/guest.out")
    [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e < 3.0) }' ||
        { why="systemd-analyze security: '$exposure'"; return 1; }
    [[ $out = *"|stopped: success|" ]] || { why="vmchanneld units: $out"; return 1; }
}

# upgrade_at N: at each of u1's progress marks (every 8 MiB of 64), u2 and
# u3 may go on past their next mark (lockstep: they cannot finish while u1
# is at its first marks).  At the 1st and 2nd, with u2 and u3 checked to be
# mid-stream too, vmchanneld upgrades to its own binary, same PID; at the
# 3rd, upgrades to a path that does not exist, to a file that cannot run, to
# a binary that refuses the state (a copy of false) and to one that exits 0
# without acknowledging it (a copy of true) fail, and it serves on.
upgrade_at() {
    local out u moved
    # In a subshell: a stream that already ended would SIGPIPE run.sh.
    (echo continue >&"$u2_in"; echo continue >&"$u3_in") 2>/dev/null
    case $1 in
    1|2)
        out=$(control stats) || { why="vmchannelctl stats failed"; return 1; }
        for u in u2 u3; do
            moved=$(grep "^name=$u " <<<"$out" | sed -n 's/.* bytes_to_host=\([0-9]*\) .*/\1/p')
            [ "${moved:-0}" -gt 0 ] && [ "$moved" -lt 67108864 ] ||
                { why="at mark $1, $u had echoed '$moved' bytes: not in the middle"; return 1; }
        done
        out=$(control upgrade) && [ "$out" = "upgraded to $work/bin/vmchanneld (vmchanneld $(cat "$TOP/VERSION"))" ] ||
            { why="upgrade at mark $1: '$out'"; return 1; }
        upgrades=$((upgrades + 1)) ;;
    3)
        for out in "$work/bin/absent" "$work/bin/not-executable" "$work/bin/refuses" \
                   "$work/bin/exits-0"; do
            control upgrade "$out" 2>>"$work/refusals" &&
                { why="upgrade to $out succeeded"; return 1; }
        done
        refusals=$(grep -c 'absent: No such file\|cannot run .*not-executable: Permission denied\|refuses refused the state (exit status 1)\|exits-0 exited without acknowledging the state' "$work/refusals")
        [ "$refusals" = 4 ] || { why="refusals: $(tr '\n' '|' <"$work/refusals")"; return 1; } ;;
    *)
        return 0 ;;
    esac
    [ "$(cat "$work/pids/vmchanneld1.pid")" = "$daemon_pid" ] && kill -0 "$daemon_pid" ||
        { why="vmchanneld $daemon_pid is gone after mark $1"; return 1; }
}

# vmchannelctl upgrade in the middle of 64 MiB each way on three channels
# (the guest's cat echoes what the host sends, on u1, u2 and u3 at once):
# vmchanneld runs from a directory of its own, $work/bin, upgrades twice and
# refuses four bad upgrades (upgrade_at) while the streams run.  u2 and u3
# hold at each of their 8 MiB marks (--sync) until u1 passed as many.  Every
# stream echoes whole, checked byte by byte; each channel counts one host
# connection (none dropped) and no loss across the upgrades (the counters
# travel in the state); the guest's cats end without error.
t_upgrade() {
    local bin=$work/bin src=$TOP/host/vmchanneld upgrades=0 refusals=0 daemon_pid u
    local u2_in u3_in
    local -a make_args=() pids=()
    [ "$asan" = 1 ] && src=$TOP/host/asan/vmchanneld make_args=(SANITIZE=1)
    mkdir -p "$TOP/build"
    flock -w 600 "$TOP/build/.vm-run.lock" make -s -C "$TOP/host" "${make_args[@]}" >/dev/null 2>&1 ||
        { why="building vmchanneld failed"; return 1; }
    rm -rf "$bin" "$work/refusals"
    mkdir -p "$bin" && cp "$src" "$bin/vmchanneld" && cp /bin/false "$bin/refuses" &&
        cp /bin/true "$bin/exits-0" &&
        : >"$bin/not-executable" || { why="cannot prepare $bin"; return 1; }
    local -a extra_channels=(--channel u1 --channel u2 --channel u3)
    local -a extra_vm_args=(--daemon "$bin/vmchanneld")
    guest "$1" sh -c 'for u in u1 u2 u3; do (exec 3<>/dev/vmchannel/$u && cat <&3 >&3) & pids="$pids $!"; done
        status=0; for p in $pids; do wait $p || status=1; done; echo "echo status $status"
        cat /dev/vmchannel/t'
    for u in u2 u3; do
        rm -f "$work/$u.in"
        mkfifo "$work/$u.in"
        "$XFER" echo-check --bytes 64M --seed "4${u#u}" --progress 8M --sync --stall 120 \
            --wait "$WAIT" "$work/ep/$u.sock" <"$work/$u.in" >"$work/$u.out" 2>&1 &
        pids+=($!)
        bg_pids+=($!)
    done
    exec {u2_in}>"$work/u2.in" {u3_in}>"$work/u3.in"
    "$XFER" wait --wait "$WAIT" "$work/ep/u1.sock" &&
        daemon_pid=$(cat "$work/pids/vmchanneld1.pid") || { why="no vmchanneld"; return 1; }
    echo_stream_with upgrade_at 64M "" u1 8M || { exec {u2_in}>&- {u3_in}>&-; return 1; }
    exec {u2_in}>&- {u3_in}>&-
    cp "$work/host.out" "$work/u1.out"
    for u in 0 1; do
        bg_wait "${pids[$u]}" || { why="u$((u + 2)): $(tr '\n' ' ' <"$work/u$((u + 2)).out")"; return 1; }
    done
    [ "$upgrades" = 2 ] && [ "$refusals" = 4 ] ||
        { why="$upgrades upgrades, $refusals refusals: the streams ended first"; return 1; }
    local stats
    stats=$(control stats) || { why="vmchannelctl stats failed"; return 1; }
    echo done | socat -u - "UNIX-CONNECT:$work/ep/t.sock"
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    for u in u1 u2 u3; do
        local sent got line
        sent=$(hash_of sent "$work/$u.out")
        got=$(hash_of received "$work/$u.out")
        [ "${sent%% *}" = bytes=67108864 ] && [ "$sent" = "$got" ] ||
            { why="$u: sent '$sent', echoed '$got'"; return 1; }
        line=$(grep "^name=$u " <<<"$stats")
        for want in bytes_from_guest=67108864 bytes_to_host=67108864 bytes_to_guest=67108864 \
            host_connections=1 lost_bytes=0 host_errors=0 guest_errors=0; do
            [[ " $line " = *" $want "* ]] || { why="$u lacks $want: $line"; return 1; }
        done
    done
    expect_output "echo status 0
done"
}

# bg_wait PID: waits for a helper started in the background (and listed in
# bg_pids) and forgets it; returns its status.
bg_wait() {
    local status=0 p keep=()
    wait "$1" || status=$?
    for p in "${bg_pids[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    bg_pids=("${keep[@]}")
    return "$status"
}

# --- QMP: one session per test on vm-run --qmp PATH, a socat coprocess.
# qmp_open PATH, qmp JSON (reply in $qmp_reply; events met on the way are kept
# in $work/qmp.events), qmp_event NAME (waits for it, bounded), qmp_close.
QMP_PID=
qmp_open() {
    "$XFER" wait --wait "$WAIT" "$1" || { why="no QMP socket"; return 1; }
    : >"$work/qmp.events"
    coproc QMP { exec socat - "UNIX-CONNECT:$1"; }
    bg_pids+=("$QMP_PID")
    # Plain copies of the coprocess's pipes: subshells see those.
    exec {qmp_in}>&"${QMP[1]}" {qmp_out}<&"${QMP[0]}"
    local greeting
    read -r -t 60 -u "$qmp_out" greeting && [[ $greeting == *QMP* ]] ||
        { why="no QMP greeting"; return 1; }
    qmp '{"execute":"qmp_capabilities"}'
}
qmp() {
    local line
    (printf '%s\n' "$1" >&"$qmp_in") 2>/dev/null || { why="QMP gone"; return 1; }
    while read -r -t 60 -u "$qmp_out" line; do
        case $line in
        *'"event"'*) printf '%s\n' "$line" >>"$work/qmp.events" ;;
        *'"return"'*) qmp_reply=$line; return 0 ;;
        *'"error"'*) qmp_reply=$line; why="QMP $1: $line"; return 1 ;;
        esac
    done
    why="no QMP reply to $1"
    return 1
}
qmp_event() {
    local line end=$((SECONDS + ${2:-120}))
    grep -q "\"event\": *\"$1\"" "$work/qmp.events" 2>/dev/null && return 0
    while [ "$SECONDS" -lt "$end" ] && read -r -t $((end - SECONDS + 1)) -u "$qmp_out" line; do
        printf '%s\n' "$line" >>"$work/qmp.events"
        [[ $line == *"\"event\": \"$1\""* || $line == *"\"event\":\"$1\""* ]] && return 0
    done
    why="no QMP event $1 within ${2:-120} s (events: $(grep -o '"event": *"[A-Z_]*"' "$work/qmp.events" | tr '\n' ' '))"
    return 1
}
qmp_close() {
    [ -n "${QMP_PID:-}" ] || return 0
    exec {qmp_in}>&- {qmp_out}<&- 2>/dev/null
    kill "$QMP_PID" 2>/dev/null
    wait "$QMP_PID" 2>/dev/null
    QMP_PID=
}

# --- Delivery rules (issue 12): each fails on bd36cf7.

# Shell redirection twice, with a slow host reader (64 KiB every 20 ms): the
# first connection gets all 2 MiB of f (same checksum as the guest's file) and
# its end of file, the next connection "tail".  (bd36cf7 dropped what
# vmchanneld still held for the first session when the guest opened again.)
t_reopen_slow_reader() {
    guest "$1" sh -c 'head -c 2M /dev/urandom >/tmp/f && '"$XFER"' recv - </tmp/f || exit 1
        cat /tmp/f >/dev/vmchannel/t; echo tail >/dev/vmchannel/t'
    "$XFER" recv --block 64K --delay 20 --wait "$WAIT" "$work/ep/t.sock" >"$work/host.out" ||
        { why="host receive failed: $(tail -n1 "$work/host.out")"; return 1; }
    local second
    second=$(timeout 120 socat -u "UNIX-CONNECT:$work/ep/t.sock" -)
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local want got
    want=$(hash_of received "$work/guest.out")
    got=$(hash_of received "$work/host.out")
    [ -n "$want" ] && [ "$got" = "$want" ] ||
        { why="f is '$want', the first connection got '$got'${second:+, then '$second'}"; return 1; }
    [ "$second" = tail ] || { why="the second connection got '${second:0:100}', not 'tail'"; return 1; }
}

# echo_stream_with PROGRESS-ACTION BYTES [--sync|"" [CHANNEL [EVERY]]]: runs
# vmc-xfer echo-check on CHANNEL (default echo) in the background and calls
# PROGRESS-ACTION N at its N-th progress line (every EVERY, default 1 MiB,
# echoed); the stream's outcome goes to $work/host.out.  With --sync,
# echo-check sends nothing more after a mark until the action has returned
# (it still reads).
echo_stream_with() {
    local action=$1 bytes=$2 line n=0 fd xfer
    rm -f "$work/xfer.in"
    mkfifo "$work/xfer.in"
    exec {fd}< <(exec "$XFER" echo-check --bytes "$bytes" --seed 17 --progress "${5:-1M}" --stall 60 \
        ${3:-} --wait "$WAIT" "$work/ep/${4:-echo}.sock" 2>&1 <"$work/xfer.in")
    xfer=$!
    bg_pids+=("$xfer")
    exec {xfer_in}>"$work/xfer.in"
    : >"$work/host.out"
    while read -r -u "$fd" line; do
        printf '%s\n' "$line" >>"$work/host.out"
        case $line in
        progress*)
            n=$((n + 1))
            "$action" "$n" || { exec {fd}<&- {xfer_in}>&-; return 1; }
            # In a subshell: a stream that already ended (judged below)
            # would SIGPIPE run.sh.
            [ -z "${3:-}" ] || (echo continue >&"$xfer_in") 2>/dev/null
            ;;
        esac
    done
    exec {fd}<&- {xfer_in}>&-
    bg_wait "$xfer" || { why="echo stream failed: $(grep -v '^progress' "$work/host.out" | tr '\n' ' ')"; return 1; }
}

# pause_at N: at the first three progress marks, QMP stop (the VM is paused
# when it returns: query-status says so), then cont.
pause_at() {
    [ "$1" -le 3 ] || return 0
    qmp '{"execute":"stop"}' && qmp '{"execute":"query-status"}' || return 1
    [[ $qmp_reply == *'"status": "paused"'* ]] || { why="after stop: $qmp_reply"; return 1; }
    qmp '{"execute":"cont"}' || return 1
    pauses=$((pauses + 1))
}

# The guest echoes with cat on one open file; the host streams 6 MiB and reads
# it back on one connection, with QMP stop and cont after the 1st, 2nd and 3rd
# MiB: every byte after each pause still echoes, checksums equal.  (bd36cf7's
# vmchanneld ended every session when QEMU stopped the rings.)
t_pause_resume() {
    local -a extra_vm_args=(--qmp "$work/qmp.sock")
    local pauses=0
    guest "$1" sh -c 'exec 3<>/dev/vmchannel/echo; cat <&3 >&3'
    qmp_open "$work/qmp.sock" || return 1
    echo_stream_with pause_at 6M || { why="after $pauses pause(s): $why"; return 1; }
    [ "$pauses" = 3 ] || { why="only $pauses pauses"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local sent got
    sent=$(hash_of sent "$work/host.out")
    got=$(hash_of received "$work/host.out")
    [ -n "$sent" ] && [ "$sent" = "$got" ] || { why="sent '$sent', echoed '$got'"; return 1; }
}

# ping_echo N: N round trips of 64 bytes with the guest's echo on channel "echo".
# guest_says_ready WHAT: the guest's "ready" on channel t (WHAT names it in a failure).
guest_says_ready() {
    local out
    out=$(timeout 120 socat -u "UNIX-CONNECT:$work/ep/t.sock" -)
    [ "$out" = ready ] || { why="the guest said '${out:0:100}', not ready ($1)"; return 1; }
}

ping_echo() {
    "$XFER" ping --count "$1" --size 64 --wait "$WAIT" "$work/ep/echo.sock" >>"$work/host.out" 2>&1 ||
        { why="round trips failed: $(tail -n1 "$work/host.out")"; return 1; }
}

# A blocked read() busy-polls rxq with its interrupt off (driver/readwait.c):
# 400 round trips at poll_us=10000 take fewer interrupts of the device than
# three quarters of those at poll_us=0, where every message interrupts (more
# than 200 counted, so the count is the device's).  Few are taken on a quiet
# machine; a loaded one answers late more often, past the window.  After a
# pause far past the window the reader sleeps, and the interrupt it turned
# back on must wake it: the next round trips come back (a reader left
# without it would hang here).
t_busy_poll() {
    local n=400
    : >"$work/host.out"
    guest "$1" sh "$TOP/userspace-tests/e2e/guest-busy-poll.sh" "$XFER" "$n"
    ping_echo "$n" || return 1
    # The guest's reader sleeps now: only rxq's interrupt wakes it.
    guest_says_ready "reader asleep" && ping_echo "$n" || return 1
    guest_says_ready "polling off" && ping_echo "$n" || return 1
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local polled unpolled
    polled=$(sed -n 's/^polled=\([0-9]*\) .*/\1/p' "$work/guest.out")
    unpolled=$(sed -n 's/.* unpolled=\([0-9]*\)$/\1/p' "$work/guest.out")
    [ -n "$polled" ] && [ -n "$unpolled" ] && [ "$unpolled" -gt $((n / 2)) ] && [ "$polled" -lt $((unpolled * 3 / 4)) ] ||
        { why="interrupts per $n round trips: guest printed $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# A host client that connects and never reads, while the guest writes up to
# 1 MiB (until its writes stall), then disconnects: the guest reads that
# connection's end of file, and its next write fails with ECONNRESET, once;
# the write after that is not refused for it, and the next host connection
# gets exactly the guest's next line.  (bd36cf7 discarded the bytes silently.)
t_loss_reported() {
    guest "$1" "$PROBE" loss --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready || return 1
    rm -f "$work/hold.in"
    mkfifo "$work/hold.in"
    "$XFER" hold "$work/ep/t.sock" <"$work/hold.in" >"$work/hold.out" 2>&1 &
    local holder=$!
    bg_pids+=("$holder")
    exec {hold_fd}>"$work/hold.in"
    # The guest has written all it could when it says ready again.
    guest_ready || { exec {hold_fd}>&-; return 1; }
    echo >&"$hold_fd"
    exec {hold_fd}>&-
    bg_wait "$holder" || { why="host client: $(cat "$work/hold.out")"; return 1; }
    guest_ready || return 1
    local next
    next=$(timeout 120 socat -u "UNIX-CONNECT:$work/ep/t.sock" -)
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local wrote unread
    wrote=$(sed -n 's/^wrote=//p' "$work/guest.out")
    unread=$(sed -n 's/^unread=//p' "$work/hold.out")
    [ -n "$wrote" ] && [ -n "$unread" ] && [ "$wrote" -gt "$unread" ] ||
        { why="the guest wrote '$wrote' bytes, the host left '$unread' unread: no loss to report"; return 1; }
    [ "$(sed 1d "$work/guest.out" | tr '\n' '|')" = "read: end of file|write after the loss: Connection reset by peer|write again: Resource temporarily unavailable|write to the next connection: ok|" ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
    [ "$next" = after ] || { why="the next connection got '${next:0:100}', not 'after'"; return 1; }
}

# Six writers (two processes forked after one open(), three threads each)
# write 300 tagged records each (32..4096 bytes, one write() per record)
# through one open file while the host reads slowly (8 KiB every 2 ms): the
# host gets every record exactly once, whole, in each writer's order, and the
# exact byte total.  (bd36cf7 let writers spend the same credit: the device
# dropped the excess.)
t_concurrent_writers() {
    guest "$1" "$XFER" records --count 300 --procs 2 --threads 3 /dev/vmchannel/t
    "$XFER" records-check --writers 6 --count 300 --block 8K --delay 2 --wait "$WAIT" \
        "$work/ep/t.sock" >"$work/host.out" 2>&1
    local checked=$?
    guest_done || { why="guest exited $(cat "$work/guest.status"); host: $(tr '\n' ' ' <"$work/host.out")"; return 1; }
    [ "$checked" = 0 ] || { why="host: $(tr '\n' ' ' <"$work/host.out")"; return 1; }
    grep -q "^records writers=6 count=300 bytes=$(sed -n 's/.* bytes=\([0-9]*\) .*/\1/p' "$work/host.out")\$" \
        "$work/guest.out" || { why="guest: $(tr '\n' ' ' <"$work/guest.out")"; return 1; }
}

# The guest writes 4 MiB and powers off while the host program reads 8 KiB
# every 10 ms: vmchanneld, stopped by vm-run's SIGTERM with up to 1 MiB still
# held for that program (its buffer) plus what the sockets hold, writes it
# all before it exits; the program gets every byte, then end of file.
# (54226b6 exited at once: the reader got a stream cut short.)
t_stop_delivers() {
    guest "$1" "$XFER" send --bytes 4M --seed 31 /dev/vmchannel/t
    "$XFER" recv --verify --seed 31 --block 8K --delay 10 --wait "$WAIT" "$work/ep/t.sock" \
        >"$work/host.out" 2>&1
    local received=$?
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    [ "$received" = 0 ] || { why="host: $(tr '\n' ' ' <"$work/host.out")"; return 1; }
    local got
    got=$(hash_of received "$work/host.out")
    [ "$got" = "$(hash_of sent "$work/guest.out")" ] && [ "${got%% *}" = bytes=4194304 ] ||
        { why="host: $(tr '\n' '|' <"$work/host.out") guest: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

# While the guest does not read, six host programs connect and leave in turn
# (three send a line, three send nothing); then the guest reads: exactly six
# ends of file, each connection's bytes between them.  The host connects in
# the background: the device may hold a later connection until the guest has
# read earlier ends of file (VMCHANNEL_EOF_WINDOW).  (bd36cf7 merged ends of
# file that queued up while the reader was busy.)
t_every_eof() {
    guest "$1" "$PROBE" eofs --count 6 --settle 4 --ready /dev/vmchannel/echo /dev/vmchannel/t
    guest_ready || return 1
    (
        for d in '' two '' four five ''; do
            { [ -z "$d" ] || printf '%s\n' "$d"; } |
                timeout "$TIMEOUT" socat -u - "UNIX-CONNECT:$work/ep/t.sock" || exit 1
        done
    ) &
    local hosts=$!
    bg_pids+=("$hosts")
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    bg_wait "$hosts" || { why="a host connection failed"; return 1; }
    expect_output "<eof>
two
<eof>
<eof>
four
<eof>
five
<eof>
<eof>"
}

# A channel added and another removed (vmchannelctl) while the VM is stopped
# (QMP stop): QEMU survives it (11.1.3 segfaulted, exit 139, on the
# config-change message vmchanneld sent while QEMU's vhost device was
# stopped: it calls virtio_notify_config() with a NULL vdev), and after cont
# the guest sees the new channel, which carries bytes, and the removed one gone.
t_hotplug_paused() {
    local -a extra_vm_args=(--qmp "$work/qmp.sock") extra_channels=(--channel old)
    local msg="added while paused $RANDOM"
    guest "$1" sh -c "echo ready >/dev/vmchannel/echo &&
        $XFER wait --wait $WAIT /dev/vmchannel/late && cat /dev/vmchannel/late &&
        n=0; while [ -e /dev/vmchannel/old ] && [ \$n -lt 600 ]; do sleep 0.1; n=\$((n + 1)); done;
        if [ -e /dev/vmchannel/old ]; then echo old-still-there; else echo old-gone; fi"
    guest_ready || return 1
    qmp_open "$work/qmp.sock" || return 1
    qmp '{"execute":"stop"}' && qmp '{"execute":"query-status"}' || return 1
    [[ $qmp_reply == *'"status": "paused"'* ]] || { why="after stop: $qmp_reply"; return 1; }
    control add late || { why="add refused"; return 1; }
    control remove old || { why="remove refused"; return 1; }
    sleep 2
    qmp '{"execute":"query-status"}' || { why="QEMU gone after the change while stopped: $why"; return 1; }
    [[ $qmp_reply == *'"status": "paused"'* ]] || { why="still stopped? $qmp_reply"; return 1; }
    qmp '{"execute":"cont"}' || return 1
    "$XFER" wait --wait "$WAIT" "$work/ep/late.sock" &&
        printf '%s\n' "$msg" | timeout 120 socat -u - "UNIX-CONNECT:$work/ep/late.sock" ||
        { why="could not write to the added channel"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status"): $(tail -n3 "$work/guest.out" | tr '\n' '|')"; return 1; }
    expect_output "$msg
old-gone"
}

# The device on QEMU's legacy virtio-mmio interface (version 1, QEMU's
# default) cannot offer VIRTIO_F_VERSION_1: the driver refuses it with one
# log line and makes no nodes.  (It used to take it, with the guest's byte
# order where the device speaks little-endian.)
t_legacy_mmio() {
    local -a extra_vm_args=(--qemu-arg=-global --qemu-arg=virtio-mmio.force-legacy=true)
    guest "$1" sh -c 'echo nodes: $(ls /dev/vmchannel 2>/dev/null); dmesg | grep vmchannel'
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    grep -qx "nodes:" "$work/guest.out" || { why="$(grep nodes: "$work/guest.out")"; return 1; }
    expect_lines "does not offer VIRTIO_F_VERSION_1 (legacy transport?): not used" 1
}

# suspend_at N: at the first progress mark, the guest is told (channel t) to
# suspend to RAM; QEMU reports SUSPEND; QMP system_wakeup wakes it.
suspend_at() {
    [ "$1" = 1 ] || return 0
    printf 'suspend\n' | timeout 60 socat -u - "UNIX-CONNECT:$work/ep/t.sock" ||
        { why="could not tell the guest to suspend"; return 1; }
    qmp_event SUSPEND 120 || return 1
    qmp '{"execute":"query-status"}' || return 1
    [[ $qmp_reply == *'"status": "suspended"'* ]] || { why="after SUSPEND: $qmp_reply"; return 1; }
    qmp '{"execute":"system_wakeup"}' || return 1
    suspended=1
}

# Systemd guest (virtio-blk root), q35 with S3: the guest echoes on one open
# file while the host streams 4 MiB; once the first MiB came back the host
# stops sending (bytes still in flight) and the guest suspends to RAM
# (echo mem >/sys/power/state); QEMU says SUSPEND, system_wakeup, the host
# sends the other 3 MiB: they echo on the same connection, checksums equal.  (bd36cf7's driver
# had no .freeze/.restore.)  After the resume the guest touches no 9p share
# (virtio-9p does not survive S3): its command runs from memory, its status
# goes out on a serial port.
t_sd_suspend() {
    local -a extra_vm_args=(--systemd --s3 --qmp "$work/qmp.sock")
    local suspended=0
    guest "$1" bash -c '[ -w /sys/power/mem_sleep ] && echo deep >/sys/power/mem_sleep
        exec 3<>/dev/vmchannel/echo
        cat <&3 >&3 & echoer=$!
        exec 3<&-
        read -r go </dev/vmchannel/t || exit 1
        echo "suspending: $(cat /sys/power/mem_sleep)"
        if echo mem >/sys/power/state; then echo resumed; else echo "suspend failed"; fi
        wait $echoer; echo "echo loop: $?"'
    qmp_open "$work/qmp.sock" || return 1
    echo_stream_with suspend_at 4M --sync || { why="suspended=$suspended: $why"; return 1; }
    [ "$suspended" = 1 ] || { why="never suspended"; return 1; }
    guest_done || { why="guest exited $(cat "$work/guest.status")"; return 1; }
    local sent got
    sent=$(hash_of sent "$work/host.out")
    got=$(hash_of received "$work/host.out")
    [ -n "$sent" ] && [ "$sent" = "$got" ] || { why="sent '$sent', echoed '$got'"; return 1; }
    grep -q '^suspending: .*\[deep\]' "$work/guest.out" &&
        [ "$(sed 1d "$work/guest.out" | tr '\n' '|')" = "resumed|echo loop: 0|" ] ||
        { why="guest printed: $(tr '\n' '|' <"$work/guest.out")"; return 1; }
}

for kernel in "${kernels[@]}"; do
    run_label=$kernel${platform:+/$platform}
    for t in "${tests[@]}"; do
        why=
        start=$SECONDS
        rm -f "$work/guest.out"
        if ! declare -F "t_$t" >/dev/null; then
            result "$run_label" "$t" 1 "no such test"
            continue
        fi
        if why=$(why_not_applicable "$kernel" "$t"); then
            [ "$named_tests" = 0 ] || echo "SKIP $run_label $t: $why"
            continue
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            result "$run_label" "$t" 1 "skipped: the run's deadline (--budget $budget s) has passed"
            continue
        fi
        guest_pid=
        "t_$t" "$kernel"
        status=$?
        stop_test
        if ! leftovers=$(left_behind); then
            why="${why:+$why; }$leftovers"
            status=1
        fi
        [ "$status" = 0 ] || [ "$SECONDS" -lt "$deadline" ] ||
            why="${why:+$why; }the run's deadline (--budget $budget s) passed during the test"
        result "$run_label" "$t" "$status" "$why"
        echo "    ($((SECONDS - start)) s)"
    done
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
