#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs in the guest (run.sh busy_poll): three runs of vmc-xfer echo on channel
# "echo", ROUND_TRIPS each, counting the vmchannel device's interrupts: with
# the reader's busy polling at its longest (10 ms); again with the host
# waiting (for "ready" on channel "t") until the reader has given up polling
# and sleeps, so that only rxq's interrupt can wake it; then with polling off
# (the host waits for "ready" again: the previous reader has closed).
#   guest-busy-poll.sh VMC-XFER ROUND_TRIPS
set -eu
xfer=$1 n=$2
param=/sys/module/vmchannel/parameters/poll_us
irqs() { "$(dirname "$0")/../tools/virtio-irqs" vmchannel; }
round_trips() { "$xfer" echo --bytes $((n * 64)) /dev/vmchannel/echo >/dev/null; }
default=$(cat "$param")
echo 10000 >"$param"
a=$(irqs)
round_trips
b=$(irqs)
"$xfer" echo --bytes $((n * 64)) /dev/vmchannel/echo >/dev/null &
reader=$!
# Sleeping in the driver's read wait, not polling (a polling reader runs):
# checked every 10 ms, for at most 10 s.
tries=0
until [ "$(cat /proc/$reader/wchan 2>/dev/null)" = vmc_read_sleep ]; do
    tries=$((tries + 1))
    [ $tries -le 1000 ] || { echo "the reader never slept in vmc_read_sleep" >&2; exit 1; }
    sleep 0.01
done
echo ready >/dev/vmchannel/t
wait $reader
c=$(irqs)
echo 0 >"$param"
# The last reader has closed the channel: a host connection made before that
# would have met its end of file.
echo ready >/dev/vmchannel/t
round_trips
d=$(irqs)
echo "$default" >"$param"
echo "polled=$((b - a)) after_pause=$((c - b)) unpolled=$((d - c))"
