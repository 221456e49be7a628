#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A libvirt-managed guest, as docs/libvirt.md describes it: Debian 12's libvirtd
# (no systemd) in a private mount namespace, with its own /etc/libvirt, /run,
# /var/lib, /var/log and /var/cache directories (nothing of the host's libvirt is
# seen or touched), defines a domain with <emulator> pointing at the provisioned
# QEMU, memfd shared memory, the vmchannel device through <qemu:commandline> as
# vmchanneld --print-qemu-args gives it, and the busybox test guest of
# vm-run --boot-files (its 9p shares as <filesystem>s).  virsh start; the host
# streams 4 MiB through channel "echo" and reads it back, with virsh suspend and
# virsh resume after the first MiB; then a second vmchannel device (its own
# vmchanneld, channel "hp") is hot-plugged with virsh qemu-monitor-command
# (chardev-add, device_add on a spare PCIe root port) and 1 MiB echoes through
# it.  The hashes must match, the guest command must exit 0 and the domain shut
# off by itself.
#
#   userspace-tests/libvirt/run.sh [--kernel 6.1|6.12]
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
series=6.1
case ${1:-} in
--kernel) series=${2:?--kernel needs 6.1 or 6.12} ;;
--in-namespace) ;;
"") ;;
*) echo "usage: libvirt/run.sh [--kernel 6.1|6.12]" >&2; exit 2 ;;
esac
# Everything below runs in a mount namespace of its own (unmounted when the
# last process in it ends).
if [ "${1:-}" != --in-namespace ]; then
    exec unshare -m --propagation private "$0" --in-namespace "$series"
fi
series=$2

XFER=$TOP/userspace-tests/tools/vmc-xfer
WAIT=120
die() { printf 'libvirt: %s\n' "$*" >&2; exit 1; }

eval "$("$TOP/scripts/provision")"
make -s -C "$TOP/host" && make -s -C "$TOP/userspace-tests/tools" || die "build failed"

work=$(mktemp -d /tmp/vmc-libvirt.XXXXXX)
libvirtd_pid=
daemon_pids=
qemu_pid=
cleanup() {
    local rc=$?
    [ -z "$qemu_pid" ] || virsh destroy vmc-test >/dev/null 2>&1 || true
    for pid in $qemu_pid $libvirtd_pid $daemon_pids; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $libvirtd_pid $daemon_pids; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" != 0 ]; then
        for f in libvirtd.out libvirtd.log console.log output.log vmchanneld1.log vmchanneld2.log; do
            [ -s "$work/$f" ] && { echo "--- $f"; tail -n 30 "$work/$f"; }
        done
        for f in /var/log/libvirt/qemu/*.log; do
            [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# libvirt's directories, private: a tmpfs on each (the empty directory is
# made when the host has none; libvirt-daemon-system would have made it).
command -v libvirtd >/dev/null && command -v virsh >/dev/null ||
    die "no libvirtd or virsh: run scripts/provision"
for d in /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
    mkdir -p "$d"
    mount -t tmpfs tmpfs "$d"
done
# libvirt's QEMU user and group (libvirt-daemon-system's postinst would make
# them), in this namespace's copy of /etc/passwd and /etc/group only.
for f in passwd group; do
    cp "/etc/$f" "$work/$f"
    mount --bind "$work/$f" "/etc/$f"
done
getent passwd libvirt-qemu >/dev/null ||
    echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >>/etc/passwd
getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >>/etc/group
getent group kvm >/dev/null || echo 'kvm:x:64056:' >>/etc/group
cat >/etc/libvirt/libvirtd.conf <<EOF
log_outputs = "3:file:$work/libvirtd.log"
EOF
# QEMU runs as root without libvirt's confinement (no cgroups, no private
# /dev, no security driver): this machine has no systemd and no AppArmor;
# output goes to files, not to virtlogd.
cat >/etc/libvirt/qemu.conf <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
export LIBVIRT_DEFAULT_URI=qemu:///system
libvirtd --verbose >"$work/libvirtd.out" 2>&1 &
libvirtd_pid=$!
"$XFER" wait --wait "$WAIT" /run/libvirt/libvirt-sock || die "libvirtd did not start"

# The provisioned QEMU, run through its tree's loader: libvirt takes one path.
emulator=qemu-system-x86_64
if [ -n "$VMC_QEMU_ROOT" ]; then
    q=$VMC_QEMU_ROOT
    emulator=$work/qemu-system-x86_64
    cat >"$emulator" <<EOF
#!/bin/sh
exec $q/lib64/ld-linux-x86-64.so.2 --library-path $q/lib/x86_64-linux-gnu:$q/usr/lib/x86_64-linux-gnu \\
    $q/usr/bin/qemu-system-x86_64 -L $q/usr/share/qemu -L $q/usr/share/seabios "\$@"
EOF
    chmod +x "$emulator"
fi

# start_daemon K CHANNEL: vmchanneld K, serving CHANNEL at $work/vhostK.sock,
# its endpoint in $work/epK.
start_daemon() {
    mkdir -p "$work/ep$1"
    mkfifo "$work/ready$1"
    "$TOP/host/vmchanneld" --socket-path "$work/vhost$1.sock" --endpoint-dir "$work/ep$1" \
        --channel "$2" --notify-fd 3 3>"$work/ready$1" 2>"$work/vmchanneld$1.log" &
    daemon_pids+=" $!"
    local ready=
    read -r -t 20 ready <"$work/ready$1" || true
    [ "$ready" = READY=1 ] || die "vmchanneld $1 did not become ready"
}
start_daemon 1 echo
qemu_args=$("$TOP/host/vmchanneld" --socket-path "$work/vhost1.sock" --print-qemu-args --memory none)

# The guest: vm-run's busybox initramfs, echoing channel "echo" until the host
# program leaves, then channel "hp" once it appears.
"$TOP/scripts/vm-run" --kernel "$series" --boot-files "$work/boot" -- \
    sh -c "exec 3<>/dev/vmchannel/echo; cat <&3 >&3; exec 3<&-
        $XFER wait --wait $WAIT /dev/vmchannel/hp && exec 4<>/dev/vmchannel/hp && cat <&4 >&4" ||
    die "vm-run --boot-files failed"

{
    cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>vmc-test</name>
  <memory unit='MiB'>1024</memory>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$(readlink -f "$work/boot/kernel")</kernel>
    <initrd>$work/boot/initrd.gz</initrd>
    <cmdline>$(cat "$work/boot/cmdline")</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$emulator</emulator>
    <filesystem type='mount' accessmode='passthrough'>
      <source dir='/'/>
      <target dir='hostroot'/>
      <readonly/>
    </filesystem>
    <filesystem type='mount' accessmode='passthrough'>
      <source dir='$work/boot'/>
      <target dir='vmrun'/>
    </filesystem>
    <serial type='file'>
      <source path='$work/console.log'/>
      <target port='0'/>
    </serial>
    <serial type='file'>
      <source path='$work/output.log'/>
      <target port='1'/>
    </serial>
    <memballoon model='none'/>
    <!-- A spare PCIe root port (libvirt calls it pci.9): where the second
         device is hot-plugged. -->
    <controller type='pci' index='9' model='pcie-root-port'/>
  </devices>
  <qemu:commandline>
EOF
    # An address of its own: QEMU places a -device of the plain form before
    # libvirt's JSON ones, so an automatic one takes a slot libvirt chose.
    for arg in $qemu_args; do
        case $arg in vhost-user-test-device-pci,*) arg+=,bus=pcie.0,addr=0x10 ;; esac
        printf "    <qemu:arg value='%s'/>\n" "$arg"
    done
    cat <<EOF
  </qemu:commandline>
</domain>
EOF
} >"$work/domain.xml"

virsh define "$work/domain.xml" >/dev/null || die "virsh define failed"
virsh start vmc-test >/dev/null || die "virsh start failed"
qemu_pid=$(cat /run/libvirt/qemu/vmc-test.pid)

# 4 MiB echoed; at the first mark (1 MiB), with the sender held (--sync),
# virsh suspend, the domain paused, virsh resume.
mkfifo "$work/xfer.in"
exec {xfer_out}< <(exec "$XFER" echo-check --bytes 4M --seed 23 --progress 1M --stall 60 --sync \
    --wait "$WAIT" "$work/ep1/echo.sock" 2>&1 <"$work/xfer.in")
xfer_pid=$!
exec {xfer_in}>"$work/xfer.in"
suspended=0
: >"$work/host.out"
while read -r -u "$xfer_out" line; do
    printf '%s\n' "$line" >>"$work/host.out"
    case $line in
    progress*)
        if [ "$suspended" = 0 ]; then
            virsh suspend vmc-test >/dev/null || die "virsh suspend failed"
            [ "$(virsh domstate vmc-test)" = paused ] || die "not paused after virsh suspend"
            virsh resume vmc-test >/dev/null || die "virsh resume failed"
            [ "$(virsh domstate vmc-test)" = running ] || die "not running after virsh resume"
            suspended=1
        fi
        (echo continue >&"$xfer_in") 2>/dev/null || true
        ;;
    esac
done
exec {xfer_in}>&- {xfer_out}<&-
wait "$xfer_pid" || die "echo stream failed: $(grep -v '^progress' "$work/host.out" | tr '\n' ' ')"
[ "$suspended" = 1 ] || die "the stream ended before the first mark"
sent=$(sed -n 's/^sent \(bytes=[0-9]* hash=[0-9a-f]*\)$/\1/p' "$work/host.out")
got=$(sed -n 's/^received \(bytes=[0-9]* hash=[0-9a-f]*\)$/\1/p' "$work/host.out")
[ -n "$sent" ] && [ "$sent" = "$got" ] || die "sent '$sent', echoed '$got'"

# Hot-plug: a second device through QEMU's monitor, then 1 MiB through it.
start_daemon 2 hp
virsh qemu-monitor-command vmc-test --hmp "chardev-add socket,id=vmchannel1,path=$work/vhost2.sock" |
    tee "$work/hmp.out"
hp_args=$("$TOP/host/vmchanneld" --socket-path "$work/vhost2.sock" --print-qemu-args --memory none --id vmchannel1)
hp_device=$(printf '%s\n' $hp_args | grep '^vhost-user-test-device-pci,')
virsh qemu-monitor-command vmc-test --hmp "device_add $hp_device,bus=pci.9" | tee -a "$work/hmp.out"
# The monitor answers a command that worked with an empty line.
! grep -q '[^[:space:]]' "$work/hmp.out" || die "the monitor said: $(cat "$work/hmp.out")"
"$XFER" echo-check --bytes 1M --seed 29 --wait "$WAIT" "$work/ep2/hp.sock" >"$work/hp.out" 2>&1 ||
    die "hot-plugged device: $(cat "$work/hp.out")"
hp_sent=$(sed -n 's/^sent \(bytes=[0-9]* hash=[0-9a-f]*\)$/\1/p' "$work/hp.out")
hp_got=$(sed -n 's/^received \(bytes=[0-9]* hash=[0-9a-f]*\)$/\1/p' "$work/hp.out")
[ -n "$hp_sent" ] && [ "$hp_sent" = "$hp_got" ] || die "hot-plugged device: sent '$hp_sent', echoed '$hp_got'"

# The guest's cat saw end of file: its command ends, it powers off, and
# libvirt's QEMU exits.
timeout "$WAIT" tail --pid="$qemu_pid" -f /dev/null || die "the domain did not shut off"
qemu_pid=
[ "$(cat "$work/boot/status" 2>/dev/null)" = 0 ] ||
    die "the guest command failed: $(cat "$work/output.log")"
[ "$(virsh domstate vmc-test)" = "shut off" ] || die "domain state: $(virsh domstate vmc-test)"
virsh undefine vmc-test >/dev/null
echo "libvirt: libvirtd $(libvirtd --version | awk '{print $NF}'), QEMU via <emulator>, $sent echoed with virsh suspend/resume at 1 MiB; hot-plugged device: $hp_sent echoed"
