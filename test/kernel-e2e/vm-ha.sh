#!/bin/sh
# Boot h (issue 12): two server "nodes" of an active/passive pair in one VM.
# Each node is a network + mount + UTS namespace (as D9's container) with its
# own nfsd filesystem, rpc_pipefs, /var/lib/nfs, nfs.conf and our installed
# daemon (the unit's ExecStart); both have the hostname e2e-ha (nfsd's server
# scope). The store is on a virtio disk (/dev/vda) that only the active node
# mounts, at /srv/nfs, in its own mount namespace. A floating address
# ($VIP) moves between the nodes' veths on a bridge; the clients (v4.2, v4.0)
# are in a third network namespace.
#   H1 failover A -> B with A killed mid-traffic, and back to A
#   H2 B's daemon started before the disk is mounted, store-id pinned: refused
#   H4 the idle daemon does not keep the disk busy: the unmount succeeds
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
mkdir -p $SRV /mnt/c42 /mnt/c40
touch /etc/nfs.conf    # each node binds its own over it
ip link add habr type bridge && ip link set habr up

# node N: its namespaces (kept by a sleeping process, pid in NS_N), its own
# /var/lib/nfs, state dir (the rollback note: local, not on the shared disk) and nfs.conf
node_up() {
    _n=$1; _d=/run/node-$_n
    mkdir -p $_d/varlib $_d/state && printf '[nfsdcld]\nstoragedir = %s/cld\ndebug = 1\n%s' "$SRV" "${2-}" > $_d/nfs.conf
    unshare --mount --net --uts --propagation private sh -c "
        hostname e2e-ha && mount --bind $_d/varlib /var/lib/nfs && mkdir -p /var/lib/nfs/rpc_pipefs /var/lib/nfsdcltrack-ts \
        && mount --bind $_d/state /var/lib/nfsdcltrack-ts && mount --bind $_d/nfs.conf /etc/nfs.conf \
        && mount -t nfsd nfsd /proc/fs/nfsd && mount -t rpc_pipefs rpc_pipefs /var/lib/nfs/rpc_pipefs && ip link set lo up \
        && touch $_d/ready && exec sleep 100000" > "$OUT/node-$_n.txt" 2>&1 &
    eval "NS_$_n=$!"
    wait_until 20 test -e $_d/ready || { fail setup "node $_n did not come up: $(cat "$OUT/node-$_n.txt")"; return 1; }
    ip link add ha$_n type veth peer name br$_n && ip link set ha$_n netns "$(eval echo \$NS_$_n)" \
        && ip link set br$_n master habr up && on $_n ip link set ha$_n up
}
on() { _n=$1; shift; nsenter -t "$(eval echo \$NS_$_n)" -m -n -u -- "$@"; }
dpid() {  # our daemon in node N
    for _p in $(pgrep -f -- "$DBIN"); do
        [ "$(readlink /proc/$_p/ns/net)" = "$(readlink /proc/$(eval echo \$NS_$1)/ns/net)" ] || continue
        case "$(readlink /proc/$_p/exe)" in *node*|*bun*) echo "$_p"; return;; esac
    done
}
# activate N: mount the disk, start the daemon (as the unit), nfsd, the floating address
activate() {
    on $1 sh -c "mount -t ext4 /dev/vda $SRV && mkdir -p $SRV/export && chmod 1777 $SRV/export" || fail "$2" "node $1: mount of the disk"
    ( cd / && exec timeout 120 nsenter -t "$(eval echo \$NS_$1)" -m -n -u -- $DCMD ) > "$OUT/daemon-$1.txt" 2>&1 || fail "$2" "node $1: daemon start: $(head -c 300 "$OUT/daemon-$1.txt")"
    serve "$1" "$2"
}
serve() {
    on $1 sh -c "echo $LEASE > /proc/fs/nfsd/nfsv4leasetime && echo $GRACE > /proc/fs/nfsd/nfsv4gracetime \
        && echo '$SRV/export 192.0.2.0/24(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=0)' > /etc/exports \
        && exportfs -ra && rpc.mountd -N 2 -N 3 && rpc.nfsd -N 3 8 && ip addr add $VIP/24 dev ha$1" > "$OUT/serve-$1.txt" 2>&1 \
        || fail "$2" "node $1: nfsd with the floating address: $(head -c 300 "$OUT/serve-$1.txt")"
    ip -n hac neigh flush all     # the gratuitous ARP a cluster manager sends
}
# fail_node N TAG: the node dies: daemon SIGKILLed, nfsd stopped, address gone, disk unmounted (lazily: the mount dropped)
fail_node() {
    _p=$(dpid $1); kill -9 "$_p" 2>/dev/null
    on $1 sh -c "ip addr del $VIP/24 dev ha$1; rpc.nfsd 0; pkill -x rpc.mountd; exportfs -ua; umount -l $SRV" > "$OUT/fail-$1.txt" 2>&1
    info "$2" "node $1 failed: daemon (pid $_p) SIGKILLed, nfsd stopped, address removed, disk dropped"
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
ip netns add hac && ip link add hac type veth peer name brc && ip link set hac netns hac && ip link set brc master habr up \
    && ip -n hac addr add 192.0.2.100/24 dev hac && ip -n hac link set hac up && ip -n hac link set lo up || fail setup "client namespace"
pass setup "two nodes (netns+mntns+utsns, hostname e2e-ha each), a bridge, the client namespace"

# ------------------------------------------------------------------ H1
kmsg H1-A-serves
activate A H1
cmount() { nsenter --net=/run/netns/hac unshare --uts sh -c "hostname $1 && exec mount -t nfs4 -o vers=$2,soft,timeo=50 $VIP:/ $3"; }
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
T0=$(now)
fail_node A H1
activate B H1
T1=$(now)
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
info H1 "failover A -> B: node B serving $(awk -v a=$T0 -v b=$T1 'BEGIN{printf "%.1f", b-a}') s after the failure, first reclaim at $(awk -v a=$T0 -v b=$T2 'BEGIN{printf "%.1f", b-a}') s, end of grace at $(awk -v a=$T0 -v b=$T3 'BEGIN{printf "%.1f", b-a}') s"
printf 'H1\tA -> B\t%s\t%s\t%s\n' "$T0" "$T2" "$T3" >> "$OUT/ha-times.tsv"
ok H1 "the client A never recorded (v4.1, $ID41) is refused: no lock of it on node B after grace" test "$(locks B ha-c41)" = 0
kill $W 2>/dev/null
fail_node B H1

# ------------------------------------------------------------------ H1 back to A
kmsg H1-back
T0=$(now); activate A H1; T1=$(now)
poke /mnt/c42; poke /mnt/c40
wait_until $((GRACE * 4 + 30)) locked A ha-c42 && T2=$(now) || T2=-
ok H1 "failback B -> A: the v4.2 client reclaimed its lock from node A" test "$T2" != -
wait_until $((GRACE * 4 + 30)) grace_over A && T3=$(now) || T3=-
# a v4.0 client's reclaim OPEN needs no OPEN_CONFIRM, so B saw no Create for it and
# dropped its record with the old recovery epoch at GraceDone (D8: as nfsdcld does)
locked A ha-c40 && _o=reclaimed || _o="refused (no Create on B: D8, issue 11 scenario 8)"
echo "NOTE[H1]: failback B -> A: the v4.0 client, which opened nothing new on B, was $_o" >> "$OUT/result.txt"
info H1 "failback B -> A: first reclaim at $(awk -v a=$T0 -v b=$T2 'BEGIN{printf "%.1f", b-a}') s, end of grace at $(awk -v a=$T0 -v b=$T3 'BEGIN{printf "%.1f", b-a}') s"

# ------------------------------------------------------------------ H4
kmsg H4-idle
PA=$(dpid A)
on A rpc.nfsd 0
on A umount $SRV > "$OUT/h4-umount.txt" 2>&1; rc=$?
ok H4 "node A's daemon (pid $PA), idle, does not keep the disk busy: umount $SRV exits $rc with the daemon running" sh -c "test $rc = 0 && kill -0 $PA"

save() { cp /run/node-*/varlib/../nfs.conf "$OUT/" 2>/dev/null; dmesg > "$OUT/dmesg.txt"; }
save
[ "$FAILS" -eq 0 ] && echo "RESULT: PASS" >> "$OUT/result.txt" || echo "RESULT: FAIL ($FAILS)" >> "$OUT/result.txt"
power_off
