#!/bin/bash
# Kernel end-to-end scenarios for nfsdcltrack-ts under the real Linux NFS
# server (Debian 12's kernel, booted in qemu), called by .ci/run.
#
#   test/kernel-e2e/run-all.sh            (as root; CI runs it after `npm ci`)
#
# Three VMs on one host, all running this host's own userland (its / is shared
# read-only over 9p under a tmpfs overlay), the kernel and nfs-utils from
# Debian's packages (apt-get download + dpkg -x, never installed):
#   server, boot 1 (role a)  S1 lifecycle with our INSTALLED program, S2 refused
#                            reclaim, S4 early end of grace, S5 latency C vs ours,
#                            S3 part 1; then the host kills it (kill -9 of qemu)
#   server, boot 2 (role b)  same disk image: S3 part 2, the clients reclaim
#   client                   S3's NFS client, on a private link to the server
#                            (qemu dgram sockets on 127.0.0.1), alive across the crash
#   server, boot 3 (role c)  D1-D5: our cld daemon (dist/nfsdcld) as the kernel's
#                            tracker, on a disk of its own; D6 part 1, then the host
#                            kills it (kill -9 of qemu) with the daemon serving
#   server, boot 4 (role d)  same disk: D6 part 2, the store read back, the daemon
#                            offers its records to the kernel; then D7-D10: switching
#                            from nfsdcld and the C nfsdcltrack, a v4.0 client across two
#                            restarts, a container, capabilities (E2E_BOOTS=e: alone, boot 6)
#   server, boot h (role h)  H1-H4 (issue 12): two HA server nodes as namespaces in one VM,
#                            the store on a disk only the active node mounts (vm-ha.sh)
#   server, boot 5 (role s)  R1 a reclaim storm: E2E_STORM_CLIENTS clients (each in its own
#                            network and UTS namespace, in the same VM) reclaim their locks
#                            under our daemon, nfsdcld, our upcall program and the C one
# See README.md beside this file.
#
# Prints one summary line per scenario, then "kernel-e2e: N passed, M failed".
# Exit status: 0 when every check passed; 1 when one failed; 0 with a loud
# "SKIP: <reason>" line when qemu cannot run here (E2E_REQUIRE=1 makes that 1).
#
# Environment:
#   E2E_WORK=/tmp/kernel-e2e    cache (debs, unpacked kernel and nfs-utils), shared with
#                               ../shared/kernel-e2e/run.sh
#   E2E_OUT=$E2E_WORK/ts-out    artefacts of this run (wiped at start)
#   E2E_PROG=PATH               test this program as "ours" instead of installing
#                               dist/ with scripts/install.sh (e.g. the C one)
#   E2E_GRACE=10 E2E_GRACE_B=15 E2E_LEASE=10   nfsd grace/lease seconds (boot 1, boot 2)
#   E2E_ACCEL=auto|kvm|tcg      E2E_NO_APT=1: never call apt-get
#   E2E_REQUIRE=1               a SKIP is a failure
#   E2E_BOOTS="a c h s"         which server boots run: a (with b and the client), c (the
#                               cld daemon, with d and D7-D10), h (two HA nodes: H1-H4), s (the
#                               reclaim storm); all four by default, as CI runs them
#                               (development knob; e: D7-D10 alone, boot 6)
#   E2E_STORM_CLIENTS=16 E2E_STORM_GRACE=300 E2E_STORM_REPEAT=1              boot s (R1): CI's
#   E2E_STORM_TRACKERS=daemon,nfsdcld   small storm; npm run bench:storm runs the full one
#                               (bench/storm-e2e.sh: 200 clients, all four trackers, 3 storms each)
set -uo pipefail
T_START=$(date +%s.%N)
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${E2E_WORK:-/tmp/kernel-e2e}
OUT=${E2E_OUT:-$WORK/ts-out}
LEASE=${E2E_LEASE:-10}; GRACE=${E2E_GRACE:-10}; GRACE_B=${E2E_GRACE_B:-15}; GRACE_C=${E2E_GRACE_C:-10}
BOOTS=${E2E_BOOTS:-a c h s}
STORM_CLIENTS=${E2E_STORM_CLIENTS:-16}; GRACE_S=${E2E_STORM_GRACE:-300}; STORM_TRACKERS=${E2E_STORM_TRACKERS:-daemon,nfsdcld}
STORM_REPEAT=${E2E_STORM_REPEAT:-1}
PROG=${E2E_PROG:-}

log() { echo "[kernel-e2e $(date +%T)] $*" >&2; }
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}'; }
skip() {
    echo
    echo "######################################################################"
    echo "SKIP: kernel-e2e did not run: $*"
    echo "######################################################################"
    [ -n "${E2E_REQUIRE:-}" ] && { echo "kernel-e2e: E2E_REQUIRE is set, so this SKIP is a failure"; exit 1; }
    exit 0
}
die() { log "ERROR: $*"; echo "kernel-e2e: 0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root (apt-get, qemu with 9p passthrough of /)"
case "$REPO$WORK$OUT" in *[[:space:]]*) die "paths must not contain spaces";; esac
if [ -n "$PROG" ]; then
    PROG=$(realpath "$PROG"); [ -x "$PROG" ] || die "E2E_PROG=$PROG is not executable"
else
    [ -x "$REPO/dist/nfsdcltrack" ] || die "$REPO/dist/nfsdcltrack is missing: run npm ci (or node scripts/build.mjs) first"
fi

ACCEL=${E2E_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
    # KVM only with real VT-x/AMD-V; a PVM /dev/kvm (kvm_pvm) cannot boot a stock kernel
    if [ -c /dev/kvm ] && grep -qw -E 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
case "$ACCEL" in
    kvm) QACCEL="-machine pc,accel=kvm -cpu host";;
    tcg) QACCEL="-machine pc -accel tcg,thread=multi -cpu max";;
    *) die "E2E_ACCEL must be auto, kvm or tcg";;
esac

# ------------------------------------------------------------------ packages
HOST_PKGS="qemu-system-x86 busybox-static cpio kmod procps e2fsprogs util-linux
  libtirpc3 libevent-core-2.1-7 libwrap0 libsqlite3-0 libdevmapper1.02.1
  libgssapi-krb5-2 libkeyutils1 libcap2"
missing=""
for p in $HOST_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { log "apt-get update"; apt-get update -qq || return 1; apt_updated=1; }; }
if [ -n "$missing" ]; then
    [ -z "${E2E_NO_APT:-}" ] || skip "missing host packages:$missing (E2E_NO_APT is set)"
    apt_update || skip "apt-get update failed"
    log "installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || skip "cannot install host packages:$missing"
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not available"

mkdir -p "$WORK/debs"
# One run at a time per cache: a second run would wipe this one's $OUT and
# staged install under its VMs (and their markers would drive this one's kills).
exec 9> "$WORK/.run.lock"
if ! flock -n 9; then
    log "another kernel-e2e run holds $WORK/.run.lock: waiting for it (E2E_WORK/E2E_OUT elsewhere run in parallel)"
    flock -w 1800 9 || die "another kernel-e2e run has held $WORK/.run.lock for 30 minutes"
fi
if ! ls "$WORK"/debs/linux-image-*.deb >/dev/null 2>&1 || ! ls "$WORK"/debs/nfs-kernel-server_*.deb >/dev/null 2>&1 \
   || ! ls "$WORK"/debs/nfs-common_*.deb >/dev/null 2>&1 || ! ls "$WORK"/debs/libnfsidmap1_*.deb >/dev/null 2>&1; then
    [ -z "${E2E_NO_APT:-}" ] || skip "kernel/nfs-utils debs not cached in $WORK/debs (E2E_NO_APT is set)"
    apt_update || skip "apt-get update failed"
    KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$KPKG" ] || skip "cannot resolve linux-image-amd64 in the apt lists"
    log "downloading $KPKG nfs-kernel-server nfs-common libnfsidmap1"
    (cd "$WORK/debs" && apt-get download -qq "$KPKG" nfs-kernel-server nfs-common libnfsidmap1) \
        || skip "apt-get download of the kernel / nfs-utils failed"
fi
if [ ! -e "$WORK/kroot/.done" ]; then
    log "unpacking the kernel"
    rm -rf "$WORK/kroot"; mkdir -p "$WORK/kroot"
    dpkg -x "$(ls "$WORK"/debs/linux-image-*.deb | tail -1)" "$WORK/kroot" || skip "cannot unpack the kernel"
    depmod -b "$WORK/kroot" "$(ls "$WORK/kroot/lib/modules")"
    touch "$WORK/kroot/.done"
fi
if [ ! -e "$WORK/stage/.done" ]; then
    log "unpacking nfs-utils"
    rm -rf "$WORK/stage"; mkdir -p "$WORK/stage"
    for d in "$WORK"/debs/nfs-kernel-server_*.deb "$WORK"/debs/nfs-common_*.deb "$WORK"/debs/libnfsidmap1_*.deb; do
        dpkg -x "$d" "$WORK/stage"
    done
    # Debian 12 has merged /usr: fold the debs' /sbin and /lib into usr/
    for d in sbin bin lib; do
        if [ -d "$WORK/stage/$d" ] && [ ! -L "$WORK/stage/$d" ]; then
            mkdir -p "$WORK/stage/usr/$d"; cp -a "$WORK/stage/$d/." "$WORK/stage/usr/$d/"; rm -rf "$WORK/stage/$d"
        fi
    done
    rm -rf "$WORK/stage/usr/share" "$WORK/stage/etc/init.d"
    touch "$WORK/stage/.done"
fi
KVER=$(ls "$WORK/kroot/lib/modules")
VMLINUZ=$WORK/kroot/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || skip "no kernel image in $WORK/kroot"

# ------------------------------------------------------------------ initramfs
# busybox + virtio/9p/overlay modules + initramfs-init.sh (which mounts the host's / and
# switches to it); our own copy, so that ../shared/kernel-e2e/run.sh can share the cache
IRD=$WORK/initramfs-ts
rm -rf "$IRD"; mkdir -p "$IRD"/{bin,modules,proc,sys,dev}
cp /bin/busybox "$IRD/bin/busybox"
cp "$HERE/initramfs-init.sh" "$IRD/init"; chmod 755 "$IRD/init"
for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$WORK/kroot" -S "$KVER" --show-depends "$m"; done \
    | awk '$1=="insmod"{print $2}' | awk '!seen[$0]++' | while read -r ko; do
        cp "$ko" "$IRD/modules/"; basename "$ko" >> "$IRD/modules/order"; done
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1 > "$WORK/initramfs-ts.cpio.gz")

# ------------------------------------------------------------------ our program, staged
# Installed once here with DESTDIR (as a distribution package is built), then
# copied into each VM's / : both boots run the same build even if dist/ is
# rebuilt meanwhile, and the VMs test exactly what install.sh produced.
rm -rf "$OUT"; mkdir -p "$OUT"/{a,b,client,c,d,e,s,h,markers}
OURS_ROOT=$WORK/ours-root
if [ -z "$PROG" ]; then
    rm -rf "$OURS_ROOT"
    bash "$REPO/scripts/install.sh" --destdir "$OURS_ROOT" --kernel-persist > "$OUT/host-install.log" 2>&1 \
        || die "scripts/install.sh --destdir failed: $(tr '\n' ' ' < "$OUT/host-install.log")"
    log "staged our program: $(head -1 "$OURS_ROOT/usr/local/sbin/nfsdcltrack") ($(du -sh "$OURS_ROOT" | cut -f1))"
fi

# ------------------------------------------------------------------ VMs
DISK=$OUT/disk.img DISK_C=$OUT/disk-c.img DISK_E=$OUT/disk-e.img DISK_H=$OUT/disk-h.img
truncate -s 64M "$DISK_H" || die "cannot make the disk image of boot h"
truncate -s 256M "$DISK" && mkfs.ext4 -q -F -L e2e-store "$DISK" || die "cannot make the disk image"
truncate -s 128M "$DISK_C" && mkfs.ext4 -q -F -L e2e-cld "$DISK_C" || die "cannot make the disk image of boot 3"
truncate -s 128M "$DISK_E" && mkfs.ext4 -q -F -L e2e-switch "$DISK_E" || die "cannot make the disk image of boot 5"
P_SERVER=$((20000 + RANDOM % 20000)); P_CLIENT=$((P_SERVER + 1))
COMMON="console=ttyS0 quiet panic=-1 log_buf_len=16M e2e.share=$OUT e2e.work=$WORK e2e.repo=$REPO e2e.lease=$LEASE e2e.oursroot=$OURS_ROOT"
[ -n "$PROG" ] && COMMON="$COMMON e2e.prog=$PROG"
# vm ROLE SCRIPT MEM SMP APPEND EXTRA-QEMU-ARGS...: start a VM in the background; sets VM_PID
vm() {
    local role=$1 script=$2 mem=$3 smp=$4 append=$5; shift 5
    qemu-system-x86_64 $QACCEL -smp "$smp" -m "$mem" \
        -nodefaults -no-user-config -display none -no-reboot -serial stdio \
        -kernel "$VMLINUZ" -initrd "$WORK/initramfs-ts.cpio.gz" \
        -append "$COMMON e2e.role=$role e2e.test=$HERE/$script $append" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs "local,path=$OUT,mount_tag=e2eout,security_model=none" \
        "$@" </dev/null > "$OUT/$role/console.log" 2>&1 &
    VM_PID=$!
}
server_net="-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=$P_SERVER,remote.type=inet,remote.host=127.0.0.1,remote.port=$P_CLIENT -device virtio-net-pci,netdev=n0,mac=52:54:00:e2:e0:01"
client_net="-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=$P_CLIENT,remote.type=inet,remote.host=127.0.0.1,remote.port=$P_SERVER -device virtio-net-pci,netdev=n0,mac=52:54:00:e2:e0:02"
server_disk="-drive file=$DISK,format=raw,if=none,id=d0,cache=writeback -device virtio-blk-pci,drive=d0"
cld_disk="-drive file=$DISK_C,format=raw,if=none,id=d0,cache=writeback -device virtio-blk-pci,drive=d0"
switch_disk="-drive file=$DISK_E,format=raw,if=none,id=d0,cache=writeback -device virtio-blk-pci,drive=d0"
alive() { kill -0 "$1" 2>/dev/null; }
# wait_file FILE PID TIMEOUT: until FILE exists; fails early if PID dies
wait_file() {
    local end=$(( $(date +%s) + $3 ))
    while [ ! -e "$1" ]; do
        alive "$2" || return 2
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.3
    done
}
wait_exit() {  # PID TIMEOUT: wait for a VM to power off, kill it at the time-out
    local end=$(( $(date +%s) + $2 ))
    while alive "$1"; do
        if [ "$(date +%s)" -ge "$end" ]; then kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 1; fi
        sleep 0.5
    done
    wait "$1" 2>/dev/null; return 0
}
CLIENT_PID= A_PID= B_PID= C_PID= D_PID= E_PID= S_PID= H_PID=
cleanup() { for p in $A_PID $B_PID $CLIENT_PID $C_PID $D_PID $E_PID $S_PID $H_PID; do alive "$p" && kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT

# boot_failed ROLE PID RC: the VM did not reach its script: SKIP (qemu cannot run here)
boot_failed() {
    reason=$([ "$3" = 2 ] && echo "qemu exited" || echo "the VM did not reach its test script in 150 s")
    tailtxt=$(tail -5 "$OUT/$1/console.log" 2>/dev/null | tr '\n' ' ' | cut -c1-400)
    skip "qemu could not start the VM ($ACCEL): $reason: $tailtxt"
}
case " $BOOTS " in *" a "*)
log "booting $KVER ($ACCEL): server (boot 1) and client VMs; output in $OUT"
vm a vm-server.sh 1024 2 "e2e.grace=$GRACE" $server_disk $server_net; A_PID=$VM_PID
vm client vm-client.sh 512 1 "" $client_net; CLIENT_PID=$VM_PID
T_A=$(date +%s.%N)
wait_file "$OUT/a/vm-started" "$A_PID" 150; rc=$?
[ $rc != 0 ] && boot_failed a "$A_PID" $rc
log "server boot 1 is running its scenarios ($(awk -v a="$T_A" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s to boot)"
wait_file "$OUT/markers/s3-kill" "$A_PID" 600; rc=$?
if [ $rc = 0 ]; then
    sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.2f", 0.3 + (r % 1200) / 1000}')"   # somewhere mid-traffic
    kill -9 "$A_PID"; wait "$A_PID" 2>/dev/null
    echo "$(date +%s.%N)" > "$OUT/markers/killed"
    log "killed server boot 1 (qemu, SIGKILL) mid-traffic; booting it again on the same disk"
    vm b vm-server.sh 1024 2 "e2e.grace=$GRACE_B" $server_disk $server_net; B_PID=$VM_PID
    wait_exit "$B_PID" 300 || log "server boot 2 timed out"
    wait_exit "$CLIENT_PID" 60 || log "client VM timed out"
else
    log "server boot 1 ended without reaching the crash point"
    wait_exit "$A_PID" 30
    cleanup
fi
;;
esac
case " $BOOTS " in *" c "*)
    # boot 3: the cld daemon; after the others (the 2 vCPUs are theirs until then)
    log "booting the server for the cld daemon's scenarios (boot 3)"
    vm c vm-server.sh 1024 2 "e2e.grace=$GRACE_C" $cld_disk; C_PID=$VM_PID
    T_C=$(date +%s.%N)
    wait_file "$OUT/c/vm-started" "$C_PID" 150; rc=$?
    [ $rc != 0 ] && boot_failed c "$C_PID" $rc
    wait_file "$OUT/markers/c-kill" "$C_PID" 480; rc=$?
    if [ $rc = 0 ]; then
        sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.2f", 0.3 + (r % 1200) / 1000}')"   # somewhere mid-traffic
        kill -9 "$C_PID"; wait "$C_PID" 2>/dev/null
        log "killed server boot 3 (qemu, SIGKILL) with the daemon serving ($(awk -v a="$T_C" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s); boot 4 on the same disk"
        vm d vm-server.sh 1024 2 "e2e.grace=$GRACE_C" $cld_disk; D_PID=$VM_PID
        wait_exit "$D_PID" 900 || log "server boot 4 timed out"
    else
        log "server boot 3 ended without reaching its kill point"
        wait_exit "$C_PID" 30
    fi
    log "server boots 3 and 4 done ($(awk -v a="$T_C" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s)"
;;
esac
# solo_boot ROLE LABEL TIMEOUT: a VM just started alone (VM_PID) runs to its end
solo_boot() {
    local t rc; t=$(date +%s.%N)
    wait_file "$OUT/$1/vm-started" "$VM_PID" 150; rc=$?
    [ $rc != 0 ] && boot_failed "$1" "$VM_PID" $rc
    wait_exit "$VM_PID" "$3" || log "server $2 timed out"
    log "server $2 done ($(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s)"
}
case " $BOOTS " in *" c "*) ;; *" e "*)
    # boot 6 (development): D7-D10, which boot 4 runs after D6, alone on a disk of their own
    log "booting the server for the switching, container and capability scenarios alone (boot 6)"
    vm e vm-server.sh 1024 2 "e2e.grace=$GRACE_C" $switch_disk; E_PID=$VM_PID
    solo_boot e "boot 6" 900
;;
esac
case " $BOOTS " in *" h "*)
    # boot h (issue 12): two HA server nodes in one VM, the store on a disk only the active one mounts
    log "booting the server for the high-availability scenarios (boot h)"
    vm h vm-ha.sh 1024 2 "e2e.grace=$GRACE_C" -drive file=$DISK_H,format=raw,if=none,id=d0,cache=writeback -device virtio-blk-pci,drive=d0; H_PID=$VM_PID
    solo_boot h "boot h" 600
;;
esac
case " $BOOTS " in *" s "*)
    log "booting the server for the reclaim storm (boot 5: $STORM_CLIENTS clients)"
    vm s vm-storm.sh 2048 2 "e2e.grace=$GRACE_S e2e.clients=$STORM_CLIENTS e2e.trackers=$STORM_TRACKERS e2e.repeat=$STORM_REPEAT"; S_PID=$VM_PID
    T_S=$(date +%s.%N)
    wait_file "$OUT/s/vm-started" "$S_PID" 150; rc=$?
    [ $rc != 0 ] && boot_failed s "$S_PID" $rc
    wait_exit "$S_PID" $((600 + 12 * STORM_CLIENTS + 4 * GRACE_S)) || log "server boot 5 timed out"
    log "server boot 5 done ($(awk -v a="$T_S" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s)"
;;
esac
trap - EXIT
cleanup

# ------------------------------------------------------------------ report
REF_PATH=/usr/sbin/nfsdcltrack
OURS_PATH=${PROG:-/usr/local/sbin/nfsdcltrack}
{
echo
echo "==================== upcalls seen by the kernel, boot 1 ===================="
cat "$OUT/a/upcalls.log" 2>/dev/null || echo "(none)"
echo "==================== upcalls seen by the kernel, boot 2 ===================="
cat "$OUT/b/upcalls.log" 2>/dev/null || echo "(none)"
echo "==================== cld upcalls seen by the kernel, boot 3 (our daemon) ===================="
cat "$OUT/c/cld.log" 2>/dev/null || echo "(none)"
if [ -s "$OUT/s/storm.tsv" ]; then
    echo "==================== R1: reclaim storm (boot 5; grace seconds from \"starting N-second grace period\" to GraceDone/gracedone) ===================="
    awk -F'\t' -f "$HERE/storm-table.awk" "$OUT/s/storm.tsv"
fi
echo "==================== checks ===================="
for r in a b client c d e s h; do
    [ -f "$OUT/$r/result.txt" ] && sed "s/^/[$r] /" "$OUT/$r/result.txt" || echo "[$r] (no result file: the VM did not finish; see $OUT/$r/console.log)"
done
echo "==================== S4: grace periods (configured vs measured, kernel log) ===================="
printf '%-62s %-6s %10s %10s\n' "situation" "expect" "configured" "lasted"
cat "$OUT"/a/grace.tsv "$OUT"/b/grace.tsv "$OUT"/c/grace.tsv "$OUT"/d/grace.tsv "$OUT"/e/grace.tsv 2>/dev/null | awk -F'\t' '{printf "%-62s %-6s %9ss %9ss\n", $1, $2, $3, $4}'
# with the kprobe trace every upcall's return is paired exactly; with the dprintk
# only, upcalls that overlapped another are left out (their pairing is a guess)
EXACT=0; [ -s "$OUT/a/umh-trace.log" ] && EXACT=1
echo "==================== S5: upcall latency as the kernel sees it (ms, entry to return of call_usermodehelper; $([ $EXACT = 1 ] && echo "kprobe trace, all upcalls" || echo "dprintk, non-overlapping upcalls")) ===================="
if [ -f "$OUT/a/upcalls.tsv" ]; then
    awk -F'\t' -v c="$REF_PATH" -v o="$OURS_PATH" -v exact=$EXACT '$2 ~ /^S5-/ && (exact || $11 == 0) && $8 != "-" {
            who = ($10 == c ? "C" : ($10 == o ? "ours" : "other")); printf "%s %s %.3f\n%s all %.3f\n", who, $4, ($8 - $3) * 1000, who, ($8 - $3) * 1000 }' \
        "$OUT/a/upcalls.tsv" | sort -k1,1 -k2,2 -k3,3n | awk '
        { k = $1 " " $2; v[k, ++n[k]] = $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k } }
        END {
            for (i = 1; i <= nk; i++) { k = keys[i]; m = n[k]; med[k] = (m % 2 ? v[k, (m + 1) / 2] : (v[k, m / 2] + v[k, m / 2 + 1]) / 2); mn[k] = v[k, 1]; mx[k] = v[k, m] }
            printf "%-10s %24s %24s %7s\n", "command", "C: median (min-max) n", "ours: median (min-max) n", "ours/C"
            split("init create check gracedone remove all", cmds, " ")
            for (j = 1; j <= 6; j++) {
                c = "C " cmds[j]; o = "ours " cmds[j]
                cs = (c in n) ? sprintf("%.1f (%.0f-%.0f) %d", med[c], mn[c], mx[c], n[c]) : "-"
                os = (o in n) ? sprintf("%.1f (%.0f-%.0f) %d", med[o], mn[o], mx[o], n[o]) : "-"
                r = (c in n && o in n && med[c] > 0) ? sprintf("%.1fx", med[o] / med[c]) : "-"
                printf "%-10s %24s %24s %7s\n", cmds[j], cs, os, r
            }
        }'
else
    echo "(no upcall table from boot 1)"
fi
# the same two programs run natively on this host, for scale (TCG emulation makes
# everything in the VM many times slower, and a large JIT runtime more than a small C binary)
native() {  # PROG: median ms of 15 creates+checks in an empty environment, fresh store
    local d; d=$(mktemp -d)
    for i in $(seq 15); do
        local a b; a=$(date +%s%N)
        env -i NFSDCLTRACK_CLIENT_HAS_SESSION=Y "$1" -s "$d/s" create 6e6174697665 >/dev/null 2>&1
        b=$(date +%s%N); echo $(( (b - a) / 1000 ))
    done | sort -n | awk '{v[NR]=$1} END{printf "%.1f", v[int((NR+1)/2)]/1000}'
    rm -rf "$d"
}
if [ -f "$OUT/c/cld.tsv" ]; then
    echo "==================== cld upcall latency as the kernel sees it (ms, message queued to the daemon's reply; boot 3) ===================="
    awk -F'\t' '$7 != "-" && $11 == 1 && $4 != "event" { printf "%s %.3f\nall %.3f\n", $4, ($7 - $3) * 1000, ($7 - $3) * 1000 }' "$OUT/c/cld.tsv" | sort -k1,1 -k2,2n | awk '
        { v[$1, ++n[$1]] = $2; if (!($1 in seen)) { seen[$1] = 1; keys[++nk] = $1 } }
        END { printf "%-11s %8s %8s %8s %4s\n", "command", "median", "min", "max", "n"
              for (i = 1; i <= nk; i++) { k = keys[i]; m = n[k]; med = (m % 2 ? v[k, (m + 1) / 2] : (v[k, m / 2] + v[k, m / 2 + 1]) / 2)
                  printf "%-11s %8.1f %8.1f %8.1f %4d\n", k, med, v[k, 1], v[k, m], m } }'
    echo "(re-queued upcalls, after the daemon was killed, are left out)"
    [ -s "$OUT/c/pipe-open-ms.tsv" ] && echo "pipe created -> opened by the daemon, ms, per nfsd start (the kernel waits ~1000 ms): $(awk -F'\t' '{printf "%s#%s=%s", (NR > 1 ? " " : ""), $1, $2}' "$OUT/c/pipe-open-ms.tsv")"
fi
if [ -z "$PROG" ] && [ -x "$WORK/stage/usr/sbin/nfsdcltrack" ] && [ -x "$REPO/dist/nfsdcltrack" ]; then
    echo "for scale, natively on this host (a create, median of 15): C $(native "$WORK/stage/usr/sbin/nfsdcltrack") ms, ours $(native "$REPO/dist/nfsdcltrack") ms"
fi
} | tee "$OUT/report.txt"

echo "==================== summary ===================="
declare -A NAME=(
  [setup]="setup (VMs, disk, nfs-utils, network)"
  [S1]="S1 lifecycle served by the installed program (no wrapper), store checked after each step"
  [S2]="S2 a client whose record was removed by hand is refused: its reclaim fails"
  [S3]="S3 qemu killed mid-traffic, store on virtio-blk ext4, second boot: clients reclaim"
  [S4]="S4 early end of grace only with v4.1+ clients, not with a v4.0 client outstanding"
  [S5]="S5 upcall latency as the kernel sees it, ours vs the C nfsdcltrack, same run"
  [S6]="S6 switch from the C program: import its main.sqlite, the client reclaims under ours"
  [D1]="D1 our cld daemon, started as its unit does, is chosen by the kernel; no upcall is made"
  [D2]="D2 lifecycle under the daemon: Create/Remove, store after each step, reclaims, admin remove refused"
  [D3]="D3 early end of grace under cld v2 only with v4.1+ clients, not with a v4.0 client owed"
  [D4]="D4 nfsd restarted during grace; the daemon SIGKILLed mid-traffic and restarted: nothing lost"
  [D5]="D5 fallback: no daemon -> the upcall serves the same store; back to the daemon; clients reclaim"
  [D6]="D6 qemu killed with the daemon serving (store on virtio-blk): acknowledged records survive, offered at the next start"
  [D7]="D7 switch from Debian's nfsdcld and from the C nfsdcltrack: main.sqlite imported at our daemon's first start, clients reclaim"
  [D8]="D8 a v4.0 client holding a lock through two nfsd restarts in a row: Debian's nfsdcld refuses the second reclaim, ours grants both and removes the record when nfsd destroys the client"
  [D9]="D9 a container: its own nfsd, rpc_pipefs and daemon instance; cld there, no upcall; its client reclaims; stores apart"
  [D10]="D10 capabilities: none in any set for the upcall as the kernel runs it; CAP_DAC_READ_SEARCH alone for the daemon and the container's daemon"
  [H1]="H1 HA failover: node A's daemon killed mid-write (its lock left), node B mounts the disk, takes the lock over: A's clients reclaim, an unrecorded one is refused, nothing lost; and back"
  [H2]="H2 HA: B's daemon started before the disk, store-id pinned: refused, the kernel grants no reclaim, no store made; restarted: the clients reclaim"
  [H3]="H3 HA: an older copy of the disk image put back: the node that served the newer one reports the rollback (daemon log, status)"
  [H4]="H4 HA: the idle daemon does not keep the shared disk busy: the unmount succeeds with it running"
  [R1]="R1 reclaim storm: $STORM_CLIENTS clients reclaim under $(echo "$STORM_TRACKERS" | sed 's/,/, /g') ($STORM_REPEAT timed storm(s) per cld tracker); grace ends $([ "$STORM_CLIENTS" -ge 50 ] && echo compared || echo "reported (compared from 50 clients: npm run bench:storm)")"
)
npass=0; nfail=0
all=$(cat "$OUT"/a/result.txt "$OUT"/b/result.txt "$OUT"/client/result.txt "$OUT"/c/result.txt "$OUT"/d/result.txt "$OUT"/e/result.txt "$OUT"/s/result.txt "$OUT"/h/result.txt 2>/dev/null)
TAGS=""; ROLES=""
case " $BOOTS " in *" a "*) TAGS="S1 S2 S3 S4 S5 S6"; ROLES="a b client";; esac
case " $BOOTS " in *" c "*) TAGS="$TAGS D1 D2 D3 D4 D5 D6"; ROLES="$ROLES c d";; esac
case " $BOOTS " in *" c "*) TAGS="$TAGS D7 D8 D9 D10";; *" e "*) TAGS="$TAGS D7 D8 D9 D10"; ROLES="$ROLES e";; esac
case " $BOOTS " in *" s "*) TAGS="$TAGS R1"; ROLES="$ROLES s";; esac
case " $BOOTS " in *" h "*) TAGS="$TAGS H1 H2 H3 H4"; ROLES="$ROLES h";; esac
for s in setup $TAGS; do
    p=$(printf '%s\n' "$all" | grep -c "^PASS\[$s\]" || true)
    f=$(printf '%s\n' "$all" | grep -c "^FAIL\[$s\]" || true)
    [ "$s" = setup ] && [ "$p$f" = 00 ] && continue
    if [ "$f" = 0 ] && [ "$p" -gt 0 ]; then st=PASS; npass=$((npass + 1)); else st=FAIL; nfail=$((nfail + 1)); fi
    [ "$p$f" = 00 ] && f="no checks ran"
    printf 'kernel-e2e %-4s %s: %s (%s checks passed, %s failed)\n' "$s" "$st" "${NAME[$s]}" "$p" "$f"
done | tee -a "$OUT/report.txt"
# what the reference programs did where they differ from ours: information, not a check
printf '%s\n' "$all" | sed -n 's/^NOTE\[\([^]]*\)\]: /kernel-e2e \1 NOTE: /p' | tee -a "$OUT/report.txt"
npass=$(grep -c '^kernel-e2e [SDRH][0-9]* *PASS\|^kernel-e2e setup PASS' "$OUT/report.txt" || true)
nfail=$(grep -c '^kernel-e2e [A-Za-z0-9]* *FAIL' "$OUT/report.txt" || true)
# every VM must have finished its part (a VM that died silently is a failure)
for r in $ROLES; do
    grep -q '^RESULT:' "$OUT/$r/result.txt" 2>/dev/null || { echo "kernel-e2e: the $r VM did not finish (see $OUT/$r/console.log)"; nfail=$((nfail + 1)); }
done
printf '%s\n' "$all" | grep '^FAIL' | sed 's/^/  /'
echo "kernel-e2e: total $(elapsed) s (boot 1 and client start to end; $ACCEL); artefacts in $OUT"
echo "kernel-e2e: $npass passed, $nfail failed"
[ "$nfail" = 0 ]
