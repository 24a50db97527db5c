#!/bin/sh
# The NFS client VM of scenario S3 (PID 1, exec'd by initramfs-init.sh).  It
# outlives the server: the host kills the server's qemu mid-traffic and boots
# it again on the same disk, and this VM's clients must reclaim their state.
#
#   1. wait for the server (marker s3-go), mount v4.2 and v4.0 over the VMs'
#      private link, lock one file on each, start appending to a file on each
#      (every append is open/write/close: acknowledged data is on the server's
#      disk, the export being "sync")
#   2. marker client-ready; the server checks its store, then the host kills it
#   3. after the server's second boot (marker s3-reclaimed): the lock holders
#      are alive, the appends resumed, and every line acknowledged before the
#      crash is in the files, in order, without gaps
. "$(dirname "$(sed -n 's/.*[[:space:]]e2e\.test=\([^[:space:]]*\).*/\1/p' /proc/cmdline)")/vm-lib.sh"
SERVER=192.0.2.1

finish() {
    say "collecting results"
    dmesg > "$OUT/dmesg.txt" 2>&1
    [ "$FAILS" -eq 0 ] && echo "RESULT: PASS" >> "$OUT/result.txt" || echo "RESULT: FAIL ($FAILS)" >> "$OUT/result.txt"
    marker client-done
    power_off
}
trap finish EXIT

base_setup
/bin/busybox hostname e2e-client
install_nfs_utils
net_up 192.0.2.2/24
modprobe nfsv4
say "waiting for the server (marker s3-go)"
wait_marker s3-go 600 1 || { fail S3 "server never got ready (no s3-go)"; exit 1; }

# hard mounts with a short RPC timeout: after the server's crash the client
# gives up the dead TCP connection after timeo*(retrans+1) and reconnects
# as soon as the server is back
OPTS=hard,timeo=10,retrans=2
mkdir -p /mnt/c42 /mnt/c40
mount -t nfs4 -o vers=4.2,$OPTS $SERVER:/ /mnt/c42 || { fail S3 "mount vers=4.2"; exit 1; }
mount -t nfs4 -o vers=4.0,$OPTS $SERVER:/ /mnt/c40 || { fail S3 "mount vers=4.0"; exit 1; }
# new opens wait for the end of the server's grace period (the v4.2 client's create lifts it)
echo c42 > /mnt/c42/c42 && echo c40 > /mnt/c40/c40 || fail S3 "write"
sh -c 'exec 9<>/mnt/c42/c42; flock 9 && touch /run/locked42 && exec sleep 100000' & H42=$!
sh -c 'exec 9<>/mnt/c40/c40; flock 9 && touch /run/locked40 && exec sleep 100000' & H40=$!
: > /mnt/c42/traffic42; : > /mnt/c40/traffic40
(
    i=0
    while :; do
        i=$((i + 1))
        echo "$i" >> /mnt/c42/traffic42 && echo "$i" >> /mnt/c40/traffic40 && echo "$i" > /run/traffic.count
        sleep 0.05
    done
) & TRAFFIC=$!
wait_until 60 test -s /run/traffic.count || fail S3 "no traffic"
sleep 1
locked() { [ -e /run/locked42 ] && [ -e /run/locked40 ]; }
ok S3 "client: both files locked (the server granted the locks)" wait_until 60 locked
marker client-ready "$(cat /run/traffic.count)"

wait_marker killed 300 1 || { fail S3 "the server was never killed"; exit 1; }
n_kill=$(cat /run/traffic.count)
say "server killed after $n_kill acknowledged appends; waiting for it to come back"
wait_marker b-serving 300 || { fail S3 "the server did not come back"; exit 1; }
wait_marker s3-reclaimed 300 || fail S3 "the server did not report the reclaim"
progressed() { [ "$(cat /run/traffic.count)" -gt $((n_kill + 3)) ]; }
if wait_until 120 progressed; then
    pass S3 "client: appends resumed after the server's crash and reboot ($n_kill before, $(cat /run/traffic.count) now)"
else
    fail S3 "client: appends did not resume ($n_kill before the crash, $(cat /run/traffic.count) now)"
fi
ok S3 "client: both lock holders survived the server's crash" kill -0 $H42 $H40
# the locks are still ours: another process on this client cannot take them
if sh -c 'exec 8<>/mnt/c42/c42; flock -n -x 8' 2>/dev/null; then fail S3 "client: the v4.2 lock was lost"; else pass S3 "client: the v4.2 lock is still held"; fi
if sh -c 'exec 8<>/mnt/c40/c40; flock -n -x 8' 2>/dev/null; then fail S3 "client: the v4.0 lock was lost"; else pass S3 "client: the v4.0 lock is still held"; fi
kill $TRAFFIC; wait $TRAFFIC 2>/dev/null
for f in /mnt/c42/traffic42 /mnt/c40/traffic40; do
    r=$(awk -v k="$n_kill" '$1 != NR {bad = NR ": " $0; exit} END {print (bad ? "gap/garbage at line " bad : (NR >= k ? "ok" : "only " NR " of " k " acknowledged lines"))}' "$f")
    ok S3 "client: $f holds every acknowledged append, in order ($r)" test "$r" = ok
done
dmesg | grep -E 'NFS|nfs' | grep -vE 'Registering|Installing' | tail -20 > "$OUT/nfs-client-dmesg.txt"
kill $H42 $H40; wait $H42 $H40 2>/dev/null
umount /mnt/c42 || fail S3 "client: umount v4.2"
umount -l /mnt/c40
exit 0
