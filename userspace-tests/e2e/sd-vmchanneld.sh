#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs in the systemd guest (run.sh sd_login): vmchanneld as make install put
# it there, started by its units.  Prints what run.sh checks.
set -u
unit=vmchanneld@vm1.service
systemd-sysusers || exit 1
systemctl start vmchanneld@vm1.socket || exit 1
if ! systemctl start "$unit"; then
    journalctl -u "$unit" --no-pager | tail -n 20
    exit 1
fi
systemctl show -p ActiveState -p StatusText "$unit"
pid=$(systemctl show -p MainPID --value "$unit")
echo "user: $(stat -c %U "/proc/$pid")"
grep -E '^(NoNewPrivs|Seccomp):' "/proc/$pid/status" | tr -s '\t' ' '
vmchannelctl -c /run/vmchannel/vm1/control add c1 || exit 1
stat -c 'socket %n %U:%G %a' /run/vmchannel/vm1.vhost.sock /run/vmchannel/vm1/control \
    /run/vmchannel/vm1/c1.sock
vmchannelctl -c /run/vmchannel/vm1/control stats c1 | cut -d' ' -f1-3
# SIGHUP without --config: a warning, and the service stays.
systemctl reload "$unit" && systemctl show -p ActiveState "$unit"
systemd-analyze security "$unit" | tail -n 1
systemctl stop "$unit"
echo "stopped: $(systemctl show -p Result --value "$unit")"
journalctl -u "$unit" --no-pager -o cat | grep -E 'sandbox|error' | head -n 5
