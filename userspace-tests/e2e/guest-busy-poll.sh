#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs in the guest (run.sh busy_poll): three runs of vmc-xfer echo on channel
# "echo", ROUND_TRIPS each, counting the vmchannel device's interrupts: with
# the reader's busy polling at its longest (10 ms), again after the host paused (it waits for
# "ready" on channel "t"), then with polling off.
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
echo ready >/dev/vmchannel/t
round_trips
c=$(irqs)
echo 0 >"$param"
round_trips
d=$(irqs)
echo "$default" >"$param"
echo "polled=$((b - a)) after_pause=$((c - b)) unpolled=$((d - c))"
