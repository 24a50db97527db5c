#!/bin/sh
# Boot h (issue 12): two server "nodes" of an active/passive pair in one VM.
# Each node is a network + mount + UTS + pid namespace (as D9's container)
# with its own nfsd filesystem, rpc_pipefs, /var/lib/nfs, nfs.conf and our
# installed daemon (the unit's ExecStart); both have the hostname e2e-ha
# (nfsd's server scope). The store is on a virtio disk (/dev/vda) that only
# the active node mounts, at /srv/nfs, in its own mount namespace. A floating
# address ($VIP) moves between the nodes' veths on a bridge; the clients are
# in client network namespaces on the same bridge.
#   H1 failover A -> B with A killed mid-write (its lock left on the disk), and back to A
#   H4 the idle daemon does not keep the disk busy: the unmount succeeds
#   H2 B's daemon started before the disk is mounted, store-id pinned: refused,
#      the kernel grants no reclaim; disk mounted, daemon and nfsd restarted: reclaims
#   H3 an older copy of the disk image put back: the node that served the newer
#      generation reports the rollback (daemon log, status)
# Each node is also a pid namespace: two nodes are two hosts to the store's
# lock (boot id + pid namespace), so the dead node's lock is judged by its
# heartbeat, as on real nodes, not by its pid.
. "$(dirname "$(sed -n 's/.*[[:space:]]e2e\.test=\([^[:space:]]*\).*/\1/p' /proc/cmdline)")/vm-lib.sh"

GRACE=$(param grace); GRACE=${GRACE:-10}
OURS_ROOT=$(param oursroot)
VIP=192.0.2.10
SRV=/srv/nfs
CLI=/usr/local/sbin/nfsdcltrack
base_setup
install_nfs_utils
cp -a "$OURS_ROOT/." / || fail setup "copy of the staged install"
UNIT=$(find "$OURS_ROOT" -name '*.service' | grep -i cld | head -1)
DCMD=$(sed -n 's/^ExecStart=-\{0,1\}//p' "$UNIT" | tail -1); DBIN=${DCMD%% *}
info setup "daemon as its unit starts it: ExecStart=$DCMD"
busybox syslogd -n -O "$OUT/syslog.txt" &
for m in virtio_blk ext4 nfsd nfsv4 veth bridge; do modprobe $m || fail setup "modprobe $m"; done
wait_until 10 test -b /dev/vda || fail setup "no /dev/vda"
mkfs.ext4 -q -F /dev/vda || fail setup "mkfs /dev/vda"
mkdir -p $SRV /mnt/c42 /mnt/c40 /mnt/c2 /mnt/wA /mnt/wB
touch /etc/nfs.conf    # each node binds its own over it
ip link add habr type bridge && ip link set habr up

# node N: its namespaces (kept by a sleeping process, pid in NS_N), its own
# /var/lib/nfs, state dir (the rollback note: local, not on the shared disk) and nfs.conf
node_up() {
    _n=$1; _d=/run/node-$_n
    mkdir -p $_d/varlib $_d/state && printf '[nfsdcld]\nstoragedir = %s/cld\ndebug = 1\n%s' "$SRV" "${2-}" > $_d/nfs.conf
    unshare --mount --net --uts --pid --fork --mount-proc --propagation private sh -c "
        hostname e2e-ha && mount --bind $_d/varlib /var/lib/nfs && mkdir -p /var/lib/nfs/rpc_pipefs /var/lib/nfsdcltrack-ts \
        && mount --bind $_d/state /var/lib/nfsdcltrack-ts && mount --bind $_d/nfs.conf /etc/nfs.conf \
        && mount -t nfsd nfsd /proc/fs/nfsd && mount -t rpc_pipefs rpc_pipefs /var/lib/nfs/rpc_pipefs && ip link set lo up \
        && touch $_d/ready && exec sleep 100000" > "$OUT/node-$_n.txt" 2>&1 &
    _u=$!
    wait_until 20 test -e $_d/ready || { fail setup "node $_n did not come up: $(cat "$OUT/node-$_n.txt")"; return 1; }
    # the node's pid 1 (unshare's child): the one in the node's pid namespace
    eval "NS_$_n=$(pgrep -P $_u)"
    ip link add ha$_n type veth peer name br$_n && ip link set ha$_n netns "$(eval echo \$NS_$_n)" \
        && ip link set br$_n master habr up && on $_n ip link set ha$_n up
}
on() { _n=$1; shift; nsenter -t "$(eval echo \$NS_$_n)" -m -n -u -p -- "$@"; }
npids() {  # N PGREP-ARGS...: the (root namespace) pids of node N's processes that pgrep matches
    _n=$1; shift
    for _p in $(pgrep "$@"); do
        [ "$(readlink /proc/$_p/ns/net)" = "$(readlink /proc/$(eval echo \$NS_$_n)/ns/net)" ] && echo "$_p"
    done
}
dpid() {  # our daemon in node N
    for _p in $(npids $1 -f -- "$DBIN"); do
        case "$(readlink /proc/$_p/exe)" in *node*|*bun*) echo "$_p"; return;; esac
    done
}
# activate N: mount the disk, start the daemon (as the unit), nfsd, the floating address
activate() { mount_disk "$1" "$2" && start_daemon "$1" "$2" && serve "$1" "$2"; }
mount_disk() { on $1 sh -c "mount -t ext4 /dev/vda $SRV && mkdir -p $SRV/export && chmod 1777 $SRV/export" || fail "$2" "node $1: mount of the disk"; }
start_daemon() {  # N TAG [LOG-SUFFIX]
    ( cd / && exec timeout 120 nsenter -t "$(eval echo \$NS_$1)" -m -n -u -p -- $DCMD ) > "$OUT/daemon-$1${3-}.txt" 2>&1 || fail "$2" "node $1: daemon start: $(head -c 300 "$OUT/daemon-$1${3-}.txt")"
}
serve() {  # N TAG [GRACE]
    on $1 sh -c "echo $LEASE > /proc/fs/nfsd/nfsv4leasetime && echo ${3:-$GRACE} > /proc/fs/nfsd/nfsv4gracetime \
        && echo '$SRV/export 192.0.2.0/24(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=0)' > /etc/exports \
        && exportfs -ra && rpc.mountd -N 2 -N 3 && rpc.nfsd -N 3 8 && ip addr add $VIP/24 dev ha$1" > "$OUT/serve-$1.txt" 2>&1 \
        || fail "$2" "node $1: nfsd with the floating address: $(head -c 300 "$OUT/serve-$1.txt")"
    for _c in hac hac2 hacw; do ip -n $_c neigh flush all; done    # the gratuitous ARP a cluster manager sends
}
# stop_service N [TAG]: nfsd stopped in order (address, nfsd, the node's own mountd, exports)
stop_service() {
    _m=$(npids $1 -x rpc.mountd)
    on $1 ip addr del $VIP/24 dev ha$1
    on $1 rpc.nfsd 0 > "$OUT/stop-$1.txt" 2>&1 & _r=$!
    wait_until 60 sh -c "! kill -0 $_r 2>/dev/null" || fail "${2:-H1}" "node $1: nfsd does not stop (a thread waits for an upcall that nobody answers)"
    kill $_m; on $1 exportfs -ua
}
# fail_node N TAG: the node dies mid-write: its daemon is SIGKILLed inside a
# transaction (strace holds its fdatasync 3 s at the exit while a new client's
# Create is in flight), so its lock stays in the store; then nfsd stops, the
# address goes, the mount is dropped (lazily). Sets T_FAIL (uptime of the kill),
# T_DOWN (uptime when the node is down), LOCK_MTIME (epoch s) and LOCK_OWNER
# (the owner file left in clients.lock, "" if none).
fail_node() {
    _p=$(dpid $1)
    strace -f -p "$_p" -xx -s 8 -e trace=read,fdatasync -e inject=fdatasync:delay_exit=3000000 -o "$OUT/strace-$1.txt" 2> "$OUT/strace-$1.err" & _s=$!
    wait_until 10 grep -q attached "$OUT/strace-$1.err" || info "$2" "node $1: strace did not attach: $(head -c 200 "$OUT/strace-$1.err")"
    [ $1 = A ] && _v=4.2 || _v=4.1
    cmount ha-w$1 $_v /mnt/w$1 hacw > "$OUT/wmount-$1.txt" 2>&1 &     # its Create is the write in flight
    wait_until 30 on $1 test -d $SRV/cld/clients.lock; _in=$?
    kill -9 "$_p" 2>/dev/null; T_FAIL=$(now)
    wait $_s
    LOCK_OWNER=$(on $1 sh -c "ls $SRV/cld/clients.lock 2>/dev/null | grep '^owner\.' | head -1")
    LOCK_MTIME=$(on $1 stat -c %.3Y $SRV/cld/clients.lock 2>/dev/null)
    release $1 "$2"
    stop_service $1 "$2"
    on $1 umount -l $SRV >> "$OUT/stop-$1.txt" 2>&1; T_DOWN=$(now)
    info "$2" "node $1 failed: daemon (pid $_p) SIGKILLed $([ $_in = 0 ] && echo "inside a write" || echo "(no write seen)"), nfsd stopped, address removed, disk dropped ($(awk -v a=$T_FAIL -v b=$T_DOWN 'BEGIN{printf "%.1f", b-a}') s)"
    ok "$2" "node $1's daemon died holding the store's lock: clients.lock left on the disk, owner ${LOCK_OWNER:-none}" test -n "$LOCK_OWNER"
}
# release N: answer with -EIO the upcalls node N's killed daemon had read from
# the cld pipe (from strace's log of its reads: vers, cmd, status, xid). In
# rpc_pipefs an upcall that was read is completed only by its downcall, so its
# nfsd thread would wait forever and nfsd could not stop; on real nodes the
# node's power-off ends them (the stand-in for fencing, in one kernel).
byte() { printf "\\$(printf %03o "0x$1")"; }
release() {
    grep '= 1067$' "$OUT/strace-$1.txt" | grep -o 'read([0-9]*, "\(\\x[0-9a-f][0-9a-f]\)\{8\}"' | sed 's/.*"\(.*\)"/\1/; s/\\x/ /g' > /run/read-$1.txt
    while read -r _b1 _b2 _b3 _b4 _x1 _x2 _x3 _x4; do
        { byte $_b1; byte $_b2; byte fb; byte ff; for _b in $_x1 $_x2 $_x3 $_x4; do byte $_b; done; head -c $((1067 - 8)) /dev/zero; } > /run/down-$1
        on $1 dd if=/run/down-$1 of=/var/lib/nfs/rpc_pipefs/nfsd/cld bs=1067 count=1 < /dev/null 2>/dev/null \
            && info "$2" "node $1: its killed daemon's unanswered upcall (cmd $_b2, xid 0x$_x4$_x3$_x2$_x1) answered -EIO, as the node's power-off would end it"
    done < /run/read-$1.txt
}
# lock states of a client whose name contains WHO, in node N's nfsd
locks() { on $1 sh -c 'for c in /proc/fs/nfsd/clients/*; do [ -d "$c" ] && { cat "$c/info"; cat "$c/states"; }; done' 2>/dev/null \
    | awk -v who="$2" '/^name: /{name=$0} /type: lock/ && index(name, who){n++} END{print n+0}'; }
poke() { (ls -l "$1" >/dev/null 2>&1 &); }
nrecs_ge() { [ "$(recs "$1" | wc -l)" -ge "$2" ]; }
locked() { [ "$(locks "$1" "$2")" -ge 1 ]; }
grace_over() { on "$1" cat /proc/fs/nfsd/v4_end_grace | grep -q Y; }
recs() { on $1 $CLI -s $SRV/cld list 2>/dev/null | tail -n +2 | sort; }
node_up A && node_up B || { echo "RESULT: FAIL" >> "$OUT/result.txt"; power_off; }
# client network namespaces on the bridge: the Linux client has one NFS client per
# network namespace, server and minor version, so a new client (a new client id,
# a Create) needs a namespace or a minor version of its own
client_ns() {
    ip netns add $1 && ip link add $1 type veth peer name br$1 && ip link set $1 netns $1 && ip link set br$1 master habr up \
        && ip -n $1 addr add $2/24 dev $1 && ip -n $1 link set $1 up && ip -n $1 link set lo up || fail setup "client namespace $1"
}
client_ns hac 192.0.2.100     # the v4.2, v4.0 and v4.1 clients
client_ns hac2 192.0.2.101    # H2's client, kept away from the refusing node
client_ns hacw 192.0.2.102    # the clients whose Create is in flight when a node fails
pass setup "two nodes (netns+mntns+utsns+pidns, hostname e2e-ha each), a bridge, three client namespaces"

# ------------------------------------------------------------------ H1
kmsg H1-A-serves
activate A H1
cmount() { nsenter --net=/run/netns/${4:-hac} unshare --uts sh -c "hostname $1 && exec mount -t nfs4 -o vers=$2,soft,timeo=50 $VIP:/ $3"; }  # HOST VERS DIR [NETNS]
cmount ha-c42 4.2 /mnt/c42 && cmount ha-c40 4.0 /mnt/c40 || fail H1 "client mounts from the client namespace"
hl() { sh -c 'exec 9<>"$1"; flock 9 && exec sleep 100000' sh "$1" >/dev/null 2>&1 & echo $!; }
echo a > /mnt/c42/f42; echo a > /mnt/c40/f40
L42=$(hl /mnt/c42/f42); L40=$(hl /mnt/c40/f40)
wait_until 30 nrecs_ge A 2
ok H1 "node A's store holds the two clients: $(recs A | awk '{print $1}' | tr '\n' ' ')" test "$(recs A | wc -l)" -ge 2
# a client A never recorded: a v4.1 client whose record is removed by hand (as S2)
R0=$(recs A); mkdir -p /mnt/c41; cmount ha-c41 4.1 /mnt/c41 || fail H1 "mount v4.1"
echo a > /mnt/c41/f41; L41=$(hl /mnt/c41/f41)
wait_until 30 nrecs_ge A 3
ID41=$(recs A | grep -vxF "$R0" | awk '{print $1}' | head -1)
on A $CLI -s $SRV/cld remove "$ID41" > "$OUT/h1-remove.txt" 2>&1 || fail H1 "remove of the v4.1 client's record: $(cat "$OUT/h1-remove.txt")"
on A $CLI -s $SRV/cld list > "$OUT/h1-a-list.txt" 2>&1
ACKED=$(recs A)
ok H1 "node A acknowledged $(printf '%s\n' "$ACKED" | grep -c .) records; the v4.1 client's ($ID41) is not among them" sh -c "test -n '$ID41' && ! printf '%s\n' \"$ACKED\" | grep -q '^$ID41 '"
# mid-traffic: appends from the v4.2 client while A dies
( i=0; while :; do i=$((i + 1)); echo "line $i" >> /mnt/c42/log || break; done ) & W=$!
sleep 1
SID=$(on A $CLI -s $SRV/cld list --json 2>/dev/null | sed -n 's/.*"store_id": *"\([0-9a-f-]*\)".*/\1/p' | head -1)
fail_node A H1; T0=$T_FAIL
mount_disk B H1
# A's stale lock: B's first write (its daemon's GraceStart, at nfsd's start)
# takes it over at once if A's heartbeat is more than staleMs (4 s) old, else
# once it is (docs/ha.md). A lock judged alive would hold the writer for its
# full 10 s (waitMs) and fail it: nfsd would then not use cld v2 tracking.
on B sh -c 'while test -e "$1"; do sleep 0.1; done; date +%s.%N' sh "$SRV/cld/clients.lock/${LOCK_OWNER:-none}" > /run/h1-gone 2>&1 &
start_daemon B H1
TW0=$(date +%s.%N); KL=$(dmesg | wc -l)
serve B H1
T1=$(now)
wait_until 20 test -s /run/h1-gone; TW1=$(cat /run/h1-gone)
V2=$(dmesg | tail -n +$((KL + 1)) | grep -c 'NFSD: Using nfsdcld client tracking operations')
info H1 "A's lock: last heartbeat $(awk -v a=$LOCK_MTIME -v b=$TW0 'BEGIN{printf "%.1f", b-a}') s before B's nfsd started (its GraceStart the first write), taken over $(awk -v a=$TW0 -v b=$TW1 'BEGIN{printf "%.1f", b-a}') s after that"
printf 'H1\tlock\t%s\t%s\t%s\n' "$LOCK_MTIME" "$TW0" "$TW1" >> "$OUT/ha-times.tsv"
# (9 s for the emulated nfsd start to reach that write: 6.3 s seen at load 5-12)
ok H1 "node B's first write took A's stale lock over without waiting it out: gone by max(nfsd start, A's heartbeat + 4 s) + 9 s (a live lock holds a writer 10 s), and the GraceStart it made succeeded (cld v2 tracking: $V2)" \
    sh -c "test -n '$LOCK_OWNER' && test '$V2' -ge 1 && awk -v m=$LOCK_MTIME -v s=$TW0 -v e=${TW1:-9e18} 'BEGIN{b = m + 4; if (s > b) b = s; exit !(e <= b + 9)}'"
# as B opens it (ids only: a reclaim updates a record's time; a v4.0 client
# that reclaims makes no Create, so GraceDone drops its record: D8)
lost() { printf '%s\n' "$ACKED" | awk '{print $1}' | while read -r i; do recs B | awk '{print $1}' | grep -qxF "$i" || echo "$i"; done; }
LOST=$(lost)
ok H1 "nothing acknowledged by A is lost: the $(printf '%s\n' "$ACKED" | grep -c .) records A's store listed are in the store B serves${LOST:+ (missing: $LOST)}" test -z "$LOST"
poke /mnt/c42; poke /mnt/c40; poke /mnt/c41
wait_until $((GRACE * 4 + 30)) locked B ha-c42 && T2=$(now) || T2=-
ok H1 "the v4.2 client reclaimed its lock from node B" test "$T2" != -
wait_until $((GRACE * 4 + 30)) grace_over B && T3=$(now) || T3=-
ok H1 "the v4.0 client reclaimed its lock from node B" locked B ha-c40
info H1 "failover A -> B: node B serving $(awk -v a=$T0 -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after the failure ($(awk -v a=$T_DOWN -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after A was down), first reclaim at $(awk -v a=$T0 -v b=$T2 'BEGIN{printf "%.1f", b-a}') s, end of grace at $(awk -v a=$T0 -v b=$T3 'BEGIN{printf "%.1f", b-a}') s"
printf 'H1\tA -> B\t%s\t%s\t%s\n' "$T0" "$T2" "$T3" >> "$OUT/ha-times.tsv"
ok H1 "the client A never recorded (v4.1, $ID41) is refused: no lock of it on node B after grace" test "$(locks B ha-c41)" = 0
kill $W 2>/dev/null
fail_node B H1

# ------------------------------------------------------------------ H1 back to A
kmsg H1-back
T0=$T_FAIL; activate A H1; T1=$(now)
poke /mnt/c42; poke /mnt/c40
wait_until $((GRACE * 4 + 30)) locked A ha-c42 && T2=$(now) || T2=-
ok H1 "failback B -> A: the v4.2 client reclaimed its lock from node A" test "$T2" != -
wait_until $((GRACE * 4 + 30)) grace_over A && T3=$(now) || T3=-
# a v4.0 client's reclaim OPEN needs no OPEN_CONFIRM, so B saw no Create for it and
# dropped its record with the old recovery epoch at GraceDone (D8: as nfsdcld does)
locked A ha-c40 && _o=reclaimed || _o="refused (no Create on B: D8, issue 11 scenario 8)"
echo "NOTE[H1]: failback B -> A: the v4.0 client, which opened nothing new on B, was $_o" >> "$OUT/result.txt"
info H1 "failback B -> A: node A serving $(awk -v a=$T0 -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after the failure ($(awk -v a=$T_DOWN -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after B was down), first reclaim at $(awk -v a=$T0 -v b=$T2 'BEGIN{printf "%.1f", b-a}') s, end of grace at $(awk -v a=$T0 -v b=$T3 'BEGIN{printf "%.1f", b-a}') s"

# a client for H2 (in its own network namespace, so that it can be kept away
# from the node that refuses): recorded by A, holding a lock
cmount ha-c2 4.2 /mnt/c2 hac2 || fail H2 "mount from the second client namespace"
echo a > /mnt/c2/f2; L2=$(hl /mnt/c2/f2)
ID2=$(hexof "Linux NFSv4.2 ha-c2")
wait_until 30 sh -c "nsenter -t $NS_A -m -n -u -p -- $CLI -s $SRV/cld list 2>/dev/null | grep -q '^$ID2 '" || fail H2 "node A did not record the client ha-c2"

# ------------------------------------------------------------------ H4
kmsg H4-idle
PA=$(dpid A)
# H2's client is cut off before A stops (it must not see a refusing node)
ip link set brc2 down
on A rpc.nfsd 0
on A umount $SRV > "$OUT/h4-umount.txt" 2>&1; rc=$?
ok H4 "node A's daemon (pid $PA), idle, does not keep the disk busy: umount $SRV exits $rc with the daemon running" sh -c "test $rc = 0 && kill -0 $PA"
stop_service A; kill "$PA"

# ------------------------------------------------------------------ H2
kmsg H2-no-disk
mounted() { grep -q '^/dev/vda ' /proc/mounts || on A grep -q '^/dev/vda ' /proc/mounts || on B grep -q '^/dev/vda ' /proc/mounts; }
# H3's older copy of the disk, taken now that no node mounts it
T=$(now); ! mounted && dd if=/dev/vda of=/run/vda-old.img bs=1M 2> "$OUT/h3-dd.txt" || fail H3 "copy of the disk image (mounted: $(mounted && echo yes || echo no))"
info H3 "older copy of the disk image taken (the store as A left it) in $(awk -v a=$T -v b=$(now) 'BEGIN{printf "%.1f", b-a}') s"
# B's daemon is started (pinned) before the disk is mounted: its storage dir is
# the bare local directory under the mount point. The cluster then mounts the
# disk (too late) and starts nfsd on the real export: the daemon, refused at
# its start, keeps refusing until it is restarted.
test -n "$SID" || fail H2 "no store id read from node A's store"
printf 'store-id = %s\n[nfsdcltrack]\nstore-id = %s\n' "$SID" "$SID" >> /run/node-B/nfs.conf
SHADOW0=$(ls -A $SRV | tr '\n' ' ')
SL=$(wc -l < "$OUT/syslog.txt")
start_daemon B H2 -2; PB=$(dpid B)
# dlog PID RE: log lines of daemon PID (its pid in its node: what syslog shows) since syslog line SL
dlog() { tail -n +$((SL + 1)) "$OUT/syslog.txt" | grep "nfsdcld\[$(awk '/^NSpid:/{print $NF}' /proc/$1/status 2>/dev/null)\]: .*$2"; }
wait_until 15 dlog "$PB" "refusing to serve" > /dev/null
RL=$(dlog "$PB" "refusing to serve the store in $SRV/cld: .*pinned store $SID: is the shared storage mounted?" | head -1)
ok H2 "B's daemon (pid $PB, store-id pinned), started before the disk, keeps running and refuses loudly: ${RL#*]: }" \
    sh -c 'test -n "$1" && kill -0 "$1" && test -n "$2"' sh "$PB" "$RL"
mount_disk B H2
KL=$(dmesg | wc -l)
serve B H2
sleep 1; dmesg | tail -n +$((KL + 1)) > "$OUT/h2-dmesg.txt"
info H2 "node B's nfsd started on the refusing daemon: $(grep -o 'NFSD: Using [a-zA-Z ]*\|NFSD: starting [0-9]*-second grace[a-z ]*\|NFSD: no clients to reclaim[^(]*' "$OUT/h2-dmesg.txt" | tr '\n' ';')"
ok H2 "the kernel does not take the refused GraceStart for an empty store: no cld v2 tracking, the grace period is not skipped" \
    sh -c "! grep -q 'NFSD: Using nfsdcld client tracking' '$OUT/h2-dmesg.txt' && ! grep -q 'no clients to reclaim' '$OUT/h2-dmesg.txt' && grep -q 'starting [0-9]*-second grace period' '$OUT/h2-dmesg.txt'"
poke /mnt/c42; poke /mnt/c40
wait_until $((GRACE * 4 + 30)) grace_over B
# the v4.2 client's reclaim is refused: it comes back to B but holds no lock there, and another client takes its lock
known() { on $1 sh -c 'cat /proc/fs/nfsd/clients/*/info 2>/dev/null' | grep -q "^name: .*$2"; }   # N WHO: nfsd of node N has a client WHO
wait_until 20 known B ha-c42 && C42=seen || C42=absent
sleep 2
N42=$(locks B ha-c42)
timeout 30 flock -n /mnt/c40/f42 true; FRC=$?
ok H2 "the kernel granted no reclaim: the v4.2 client recorded by A came back ($C42) but holds no lock on B after grace ($N42), and the v4.0 client takes the lock it held (flock exit $FRC)" \
    sh -c "test $C42 = seen && test '$N42' = 0 && test $FRC = 0"
info H2 "the refusing daemon's answers: $(dlog "$PB" "downcall with status" | sed 's/.*]: \([A-Za-z]*\) xid [0-9]*: downcall with status \(-*[0-9]*\)/\1 \2/' | sort | uniq -c | awk '{printf "%s%s %s x%s", s, $2, $3, $1; s=", "}')"
# the cluster manager's fix: nfsd stopped, the daemon restarted, nfsd again
kmsg H2-restart
stop_service B
ip link set brc2 up     # the client kept away comes back
T0=$(now)
kill "$PB"; wait_until 10 sh -c "! kill -0 $PB 2>/dev/null"
SL=$(wc -l < "$OUT/syslog.txt")
start_daemon B H2 -3; PB=$(dpid B)
serve B H2 20
T1=$(now)
RL=$(dlog "$PB" refusing | head -1)
ok H2 "B's restarted daemon (pid $PB) serves the pinned store: no refusal logged${RL:+: $RL}" sh -c 'test -n "$1" && test -z "$2"' sh "$PB" "$RL"
poke /mnt/c2
wait_until 60 locked B ha-c2 && T2=$(now) || T2=-
ok H2 "the client kept away from the refusing node (ha-c2, recorded by A) reclaims its lock from B" test "$T2" != -
# (grace then runs its 20 s in full: a v4.0 client recorded by A is listed and never sends RECLAIM_COMPLETE)
info H2 "daemon and nfsd restarted: B serving $(awk -v a=$T0 -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after the restart began, the kept-away client's reclaim at $(awk -v a=$T0 -v b=$T2 'BEGIN{printf "%.1f", b-a}') s"
printf 'H2\trestart\t%s\t%s\t-\n' "$T0" "$T2" >> "$OUT/ha-times.tsv"
SHADOW1=$(ls -A $SRV | tr '\n' ' ')
ok H2 "no store was made in the local directory under the mount point $SRV (before: '${SHADOW0}', after: '${SHADOW1}')" test "$SHADOW0" = "$SHADOW1"

# ------------------------------------------------------------------ H3
kmsg H3-rollback
# B stops in order (its daemon's SIGTERM notes how far it served), the disk is
# unmounted, and the older image is written back
stop_service B
kill "$PB"; wait_until 10 sh -c "! kill -0 $PB 2>/dev/null"
on B cat /var/lib/nfsdcltrack-ts/seen.$SID > "$OUT/h3-seen.txt" 2>&1
on B umount $SRV > "$OUT/h3-umount.txt" 2>&1 || fail H3 "umount on B: $(cat "$OUT/h3-umount.txt")"
T=$(now)
! mounted && dd if=/run/vda-old.img of=/dev/vda bs=1M conv=fsync 2>> "$OUT/h3-dd.txt" || fail H3 "the older image written back (mounted: $(mounted && echo yes || echo no))"
info H3 "older image written back in $(awk -v a=$T -v b=$(now) 'BEGIN{printf "%.1f", b-a}') s; B's note: $(cat "$OUT/h3-seen.txt")"
mount_disk B H3
SL=$(wc -l < "$OUT/syslog.txt")
T0=$(now)
start_daemon B H3 -4; PB=$(dpid B)
wait_until 15 dlog "$PB" "it was rolled back" > /dev/null; T1=$(now)
RL=$(dlog "$PB" "refusing to serve the store in $SRV/cld: store $SID is at .*behind .*: it was rolled back" | head -1)
ok H3 "B's daemon (pid $PB) reports the rollback in its log: $(printf '%s' "${RL#*]: }" | cut -c1-220)" test -n "$RL"
on B $CLI -s $SRV/cld status > "$OUT/h3-status.txt" 2>&1; SRC=$?
ok H3 "nfsdcltrack status on B says ROLLED BACK and exits 1 (exit $SRC): $(grep -m1 '^position' "$OUT/h3-status.txt")" \
    sh -c "test $SRC = 1 && grep -q '^position: .*: ROLLED BACK' '$OUT/h3-status.txt' && grep -q 'REFUSED: store $SID is at .*it was rolled back' '$OUT/h3-status.txt'"
info H3 "rollback reported $(awk -v a=$T0 -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after B's daemon was started"
kill "$PB" 2>/dev/null

save() { cp /run/node-*/varlib/../nfs.conf "$OUT/" 2>/dev/null; dmesg > "$OUT/dmesg.txt"; }
save
[ "$FAILS" -eq 0 ] && echo "RESULT: PASS" >> "$OUT/result.txt" || echo "RESULT: FAIL ($FAILS)" >> "$OUT/result.txt"
power_off
