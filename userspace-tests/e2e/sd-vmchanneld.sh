#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs in the systemd guest (run.sh sd_login): vmchanneld as make install-host
# put it there, started by its units.  Prints what run.sh checks.
set -u
unit=vmchanneld@vm1.service
# On failure, the service's log says why.
trap '[ $? = 0 ] || journalctl -u "$unit" --no-pager -o cat | tail -n 20' EXIT
systemctl daemon-reload || exit 1
# It says what it creates: only a failure is of interest here.
sysusers=$(systemd-sysusers 2>&1) || { echo "$sysusers"; exit 1; }
systemctl start vmchanneld@vm1.socket || exit 1
systemctl start "$unit" || exit 1
echo "state: $(systemctl show -p ActiveState --value "$unit")"
echo "status: $(systemctl show -p StatusText --value "$unit")"
pid=$(systemctl show -p MainPID --value "$unit")
echo "user: $(stat -c %U "/proc/$pid")"
grep -E '^(NoNewPrivs|Seccomp):' "/proc/$pid/status" | tr -s '\t' ' '
vmchannelctl -c /run/vmchannel/vm1/control add c1 || exit 1
stat -c 'socket %n %U:%G %a' /run/vmchannel/vm1.vhost.sock /run/vmchannel/vm1/control \
    /run/vmchannel/vm1/c1.sock
vmchannelctl -c /run/vmchannel/vm1/control stats c1 | cut -d' ' -f1-3
# SIGHUP without --config: a warning, and the service stays.
systemctl kill --kill-who=main -s HUP "$unit" || exit 1
for i in $(seq 50); do
    journalctl -u "$unit" --no-pager -o cat | grep -q 'SIGHUP without --config' && break
    sleep 0.2
done
journalctl -u "$unit" --no-pager -o cat | grep -c 'SIGHUP without --config'
echo "state: $(systemctl show -p ActiveState --value "$unit")"
# vmchannelctl upgrade inside systemd's own filter and hardening: the same
# MainPID (systemd keeps tracking it), still active, the channel kept.
vmchannelctl -c /run/vmchannel/vm1/control upgrade | sed 's/ (vmchanneld .*)$//'
[ "$(systemctl show -p MainPID --value "$unit")" = "$pid" ] && echo "upgrade: same pid" ||
    echo "upgrade: pid $pid became $(systemctl show -p MainPID --value "$unit")"
echo "state: $(systemctl show -p ActiveState --value "$unit")"
vmchannelctl -c /run/vmchannel/vm1/control list
systemd-analyze security "$unit" | tail -n 1
systemctl stop "$unit" vmchanneld@vm1.socket
echo "stopped: $(systemctl show -p Result --value "$unit")"
# Errors, and the Landlock warning of a kernel without it.
journalctl -u "$unit" --no-pager -o cat | grep -E 'error|sandbox'
exit 0
