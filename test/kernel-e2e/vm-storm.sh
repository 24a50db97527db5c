#!/bin/sh
# Boot role s, scenario R1: a reclaim storm (PID 1, exec'd by initramfs-init.sh).
#
# N NFS clients in this one VM, each in a network namespace of its own (a veth
# pair to the bridge br0 of the server's namespace, 198.18.0.0/16, a range that
# exists only inside this VM) and mounted from a UTS namespace of its own
# (hostname sI): N distinct client ids, as N machines would have.  Every 8th
# client mounts v4.0, every 3rd of the others v4.1, the rest v4.2.  Then the
# same storm under four trackers in turn, each on a new store:
#   daemon   our cld daemon, started as its staged unit's ExecStart= starts it
#   nfsdcld  Debian's nfsdcld (nfs-kernel-server, unpacked in the e2e cache)
#   cli      our upcall program (/usr/local/sbin/nfsdcltrack, cltrack_prog)
#   c        the C nfsdcltrack (/usr/sbin/nfsdcltrack)
# Each round: nfsd starts with the tracker; the v4.1+ clients re-establish
# (Create at RECLAIM_COMPLETE); one process locks a file from each v4.1+ mount;
#   phase 1 (timing): nfsd restarts with a long grace period (3 times under
#     the cld trackers, e2e.repeat, whose results are close: the median); only v4.1+
#     clients are recorded, so the grace period ends when the last of them has
#     sent RECLAIM_COMPLETE (cld v2: the kernel; umh: the program lifts it);
#     measured from "NFSD: starting N-second grace period" to the GraceDone /
#     gracedone upcall; every v4.1+ lock must be back;
#   phase 2 (v4.0): the v4.1+ locks are let go, the v4.0 clients lock (their
#     OPEN_CONFIRM records them); nfsd restarts again with a grace period of
#     phase 1's time + 10 s: a v4.0 client never sends RECLAIM_COMPLETE, so
#     under cld it runs its whole time; every v4.0 lock must be back.
# The kernel's view of each upcall comes from the kprobe trace (vm-lib.sh:
# start_umh_trace, start_cld_trace; ktrace.awk, cld.awk).
. "$(dirname "$(sed -n 's/.*[[:space:]]e2e\.test=\([^[:space:]]*\).*/\1/p' /proc/cmdline)")/vm-lib.sh"

N=$(param clients); N=${N:-10}
GRACE=$(param grace); GRACE=${GRACE:-300}
REPEAT=$(param repeat); REPEAT=${REPEAT:-3}
TRACKERS=$(param trackers | tr , ' '); TRACKERS=${TRACKERS:-daemon nfsdcld cli c}
OURS_ROOT=$(param oursroot)
PIPEFS=/var/lib/nfs/rpc_pipefs     # where the daemons look by default
CLTRACK=/sys/module/nfsd/parameters/cltrack_prog
OURS=/usr/local/sbin/nfsdcltrack
REF=/usr/sbin/nfsdcltrack
UNIT=$OURS_ROOT/usr/local/lib/systemd/system/nfsdcld-ts.service
EXPORT=/srv/storm
SRV=198.18.0.1
ST=/run/storm
TSV=$OUT/storm.tsv

finish() {
    say "collecting results"
    dmesg > "$OUT/dmesg.txt" 2>&1
    upcalls > "$OUT/upcalls.tsv"
    cld_upcalls > "$OUT/cld.tsv"
    cp "$KTRACE" "$OUT/ktrace.log" 2>/dev/null
    cp "$ST/clients" "$OUT/clients.txt" 2>/dev/null
    [ "$FAILS" -eq 0 ] && echo "RESULT: PASS" >> "$OUT/result.txt" || echo "RESULT: FAIL ($FAILS)" >> "$OUT/result.txt"
    power_off
}
trap finish EXIT

# ------------------------------------------------------------------ clients
# $ST/clients: "I VERSION ADDRESS" per client
addr_of() { echo "198.18.$((1 + $1 / 200)).$((1 + $1 % 200))"; }
vers_of() { if [ $(($1 % 8)) = 0 ]; then echo 4.0; elif [ $(($1 % 3)) = 0 ]; then echo 4.1; else echo 4.2; fi; }
clients() { awk -v w="$1" 'w == "all" || (w == "v40") == ($2 == "4.0")' "$ST/clients"; }
mounts_of() { clients "$1" | awk '{print "/mnt/c" $1}'; }
make_net() {
    ip link add br0 type bridge && ip addr add $SRV/16 dev br0 && ip link set br0 up || { fail setup "bridge br0"; exit 1; }
    : > "$ST/clients"
    for i in $(seq "$N"); do
        echo "$i $(vers_of "$i") $(addr_of "$i")" >> "$ST/clients"
        printf 'netns add c%s\nlink add v%s type veth peer name eth0 netns c%s\nlink set v%s master br0 up\n' "$i" "$i" "$i" "$i"
    done > "$ST/root.batch"
    ip -b "$ST/root.batch" || { fail setup "ip -b: the network namespaces and veth pairs"; exit 1; }
    say "namespaces and veth pairs made"
    while read -r i v a; do
        printf 'addr add %s/16 dev eth0\nlink set eth0 up\nlink set lo up\n' "$a" | ip -n "c$i" -b - || fail setup "addresses of namespace c$i"
    done < "$ST/clients"
}
# mount_share K OF: mount every OF-th client from the K-th (the mount lives in
# this mount namespace; the NFS client is the namespace's, its id string the
# UTS namespace's hostname)
mount_share() {
    while read -r i v a; do
        [ $((i % $2)) = "$1" ] || continue
        mkdir -p "/mnt/c$i"
        nsenter --net="/run/netns/c$i" unshare --uts sh -c "echo s$i > /proc/sys/kernel/hostname && exec mount.nfs4 $SRV:/ /mnt/c$i -o vers=$v,actimeo=1" \
            || echo "$i" >> "$ST/mount-failed"
    done < "$ST/clients"
}
mount_all() {
    : > "$ST/mount-failed"
    _t0=$(now)
    mount_share 0 2 & _m=$!
    mount_share 1 2
    wait $_m
    _n=$(awk '$3 == "nfs4" && $2 ~ /^\/mnt\/c[0-9]+$/' /proc/mounts | wc -l)
    ok R1 "$N clients mounted, each from its own network and UTS namespace ($(clients v40 | wc -l) v4.0, $(awk '$2 == "4.1"' "$ST/clients" | wc -l) v4.1, $(awk '$2 == "4.2"' "$ST/clients" | wc -l) v4.2) in $(awk -v a="$_t0" -v b="$(now)" 'BEGIN{printf "%.0f", b - a}') s" \
        test "$_n" = "$N" -a ! -s "$ST/mount-failed"
    [ -s "$ST/mount-failed" ] && fail R1 "mounts that failed: $(tr '\n' ' ' < "$ST/mount-failed")"
}
# poke WHICH: a GETATTR from each of these clients (attributes are cached for
# 1 s), so that they find the restarted server now rather than at their next
# lease renewal; in the background, as each waits for its client's recovery
poke() { for _m in $(mounts_of "$1"); do (stat -c %i "$_m/" >/dev/null 2>&1 &); done; }

# ------------------------------------------------------------------ locks
# one process per group holds an exclusive flock (a whole-file POSIX lock on
# NFS) on the file of each client of the group, each through its own mount
# (storm-hold.pl)
HOLD_v41= HOLD_v40=
hold() {  # GROUP (v41|v40): lock every file of the group; sets HOLD_GROUP
    rm -f "$ST/ready-$1"
    perl "$HERE/storm-hold.pl" "$ST/ready-$1" $(clients "$1" | awk '{print "/mnt/c" $1 "/f" $1}') 2> "$OUT/hold-$1.err" &
    eval "HOLD_$1=$!"
    if wait_until $((30 + N)) test -e "$ST/ready-$1"; then return 0; fi
    fail R1 "$2: the $1 clients' locks were not all granted: $(tr '\n' ' ' < "$OUT/hold-$1.err")"; return 1
}
release() {
    for _p in $HOLD_v41 $HOLD_v40; do kill "$_p" 2>/dev/null; wait "$_p" 2>/dev/null; done
    HOLD_v41= HOLD_v40=
}
# the addresses of the clients that the server says hold a lock (one awk over
# /proc/fs/nfsd/clients/*/{info,states})
locked_addrs() {
    set -- /proc/fs/nfsd/clients/*/info /proc/fs/nfsd/clients/*/states
    [ -e "$1" ] || return 0
    awk 'FNR == 1 { d = FILENAME; sub(/\/[^\/]*$/, "", d) }
        /^address:/ { a = $2; gsub(/"/, "", a); sub(/:[0-9]+$/, "", a); A[d] = a }
        /type: lock/ { L[d]++ }
        END { for (d in A) if (L[d]) print A[d] }' "$@" | sort -u
}
# all_locked WHICH: the server holds a lock of every client of WHICH
all_locked() { locked_addrs > "$ST/have"; ! clients "$1" | awk '{print $3}' | sort | comm -23 - "$ST/have" | grep -q .; }
# check_locks LABEL WHICH: every client of WHICH holds its lock on the server;
# sets LOCKS to "held/expected"
check_locks() {
    clients "$2" | awk '{print $3}' | sort > "$ST/want"
    locked_addrs > "$ST/have"
    LOCKS="$(comm -12 "$ST/want" "$ST/have" | wc -l)/$(wc -l < "$ST/want")"
    _miss=$(comm -23 "$ST/want" "$ST/have" | tr '\n' ' ')
    [ -z "$_miss" ] || { fail R1 "$1: the server holds no lock of $(comm -23 "$ST/want" "$ST/have" | wc -l) client(s): $_miss"; return 1; }
}

# ------------------------------------------------------------------ trackers
track_kind() { case "$1" in daemon|nfsdcld) echo nfsdcld;; *) echo "UMH upcall";; esac; }
DPIDS=
tracker_start() {  # NAME
    case "$1" in
        daemon)   # as its unit does: ExecStartPre= mkdir, ExecStart= (Type=forking: returns once it serves)
            mkdir -p -m 0700 /var/lib/nfs/nfsdcltrack
            _cmd=$(sed -n 's/^ExecStart=-\{0,1\}//p' "$UNIT" | tail -1)
            (cd / && exec timeout 120 $_cmd) > "$OUT/daemon-start.txt" 2>&1 || fail R1 "daemon: $_cmd: $(head -c 300 "$OUT/daemon-start.txt")"
            DPIDS=$(pgrep -f -- "${_cmd%% *}");;
        nfsdcld)
            mkdir -p /var/lib/nfs/nfsdcld
            nfsdcld -p "$PIPEFS" || fail R1 "nfsdcld: could not start"
            wait_until 10 pgrep -x nfsdcld >/dev/null
            DPIDS=$(pgrep -x nfsdcld);;
        cli) printf '%s' "$OURS" > "$CLTRACK";;
        c)   printf '%s' "$REF" > "$CLTRACK";;
    esac
}
tracker_stop() {
    for _p in $DPIDS; do kill -TERM "$_p"; done
    for _p in $DPIDS; do wait_until 20 sh -c "! kill -0 $_p 2>/dev/null" || fail R1 "tracker pid $_p did not exit on SIGTERM"; done
    DPIDS=
}
tracker_used() { dmesg | grep -o 'NFSD: Using [a-zA-Z ]* client tracking operations' | tail -1; }
# GraceDone (cld) and gracedone (umh) upcalls queued so far, by kernel time
gd_times() {
    awk 'function ts(l) { match(l, / [0-9]+\.[0-9]+: /); return substr(l, RSTART + 1, RLENGTH - 3) + 0 }
        / umh_call: .* cmd="gracedone"/ || / cld_up: .* cmd=3 / { printf "%.6f\n", ts($0) }' "$KTRACE"
}
gd_count() { grep -c -e ' umh_call: .* cmd="gracedone"' -e ' cld_up: .* cmd=3 ' "$KTRACE"; }
gd_after() { [ "$(gd_count)" -gt "$1" ]; }
nfsd_up() { rpc.nfsd -N 3 8 || fail R1 "rpc.nfsd start"; }
nfsd_down() { rpc.nfsd 0 || fail R1 "rpc.nfsd 0"; }
# restart GRACE PHASE: nfsd stopped, the grace time set, phase mark, nfsd started.
# It first lets the clients settle: a client whose RECLAIM_COMPLETE was answered
# 1.3 s before a restart once never reclaimed at the next one (its own state
# recovery still running), and grace ran its whole time (1 storm in 36)
SETTLE_S=3
restart() {
    sleep "$SETTLE_S"
    nfsd_down
    echo "$1" > /proc/fs/nfsd/nfsv4gracetime || fail R1 "nfsv4gracetime $1"
    kmsg "$2"
    G0=$(gd_count)
    nfsd_up
}
# grace_lasted: the last "starting N-second grace period" to the first
# GraceDone/gracedone after it, in seconds ("-" if none)
grace_lasted() {
    _gs=$(dmesg | sed -n 's/^\[ *\([0-9.]*\)\] NFSD: starting [0-9]*-second grace period.*/\1/p' | tail -1)
    [ -n "$_gs" ] || { echo -; return; }
    gd_times | awk -v s="$_gs" '$1 + 0 >= s + 0 { printf "%.2f\n", $1 - s; f = 1; exit } END { if (!f) print "-" }'
}
# tables: the umh and cld upcall tables as they are now (the trace parsed once),
# in $ST/umh.tsv and $ST/cld.tsv, for client_lat, start_lat and creates_in
tables() { upcalls > "$ST/umh.tsv"; cld_upcalls > "$ST/cld.tsv"; }
# per-client upcalls of the phases PREFIX* as the kernel saw them (ms, queued/called to answered/returned)
client_lat() {
    awk -F'\t' -v p="$1" 'index($2, p) == 1 && ($4 == "check" || $4 == "create") && $8 != "-" { printf "%.3f\n", ($8 - $3) * 1000 }' "$ST/umh.tsv"
    awk -F'\t' -v p="$1" 'index($2, p) == 1 && ($4 == "Create" || $4 == "Check") && $7 != "-" { printf "%.3f\n", ($7 - $3) * 1000 }' "$ST/cld.tsv"
}
start_lat() {  # ms of the init / GraceStart upcalls of the phases PREFIX*
    { awk -F'\t' -v p="$1" 'index($2, p) == 1 && $4 == "init" && $8 != "-" { printf "%.1f\n", ($8 - $3) * 1000 }' "$ST/umh.tsv"
      awk -F'\t' -v p="$1" 'index($2, p) == 1 && $4 == "GraceStart" && $7 != "-" { printf "%.1f\n", ($7 - $3) * 1000 }' "$ST/cld.tsv"; }
}
# median, p90 and count of the numbers on stdin
stats() { sort -n | awk '{ v[++n] = $1 } END { if (!n) { print "- - 0"; exit }
    k = int(0.9 * n); if (k < 0.9 * n) k++
    printf "%.1f %.1f %d\n", (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), v[k], n }'; }
creates_in() {  # PREFIX: answered Create/create upcalls of the phases PREFIX*
    { awk -F'\t' -v p="$1" 'index($2, p) == 1 && $4 == "create" && $8 != "-"' "$ST/umh.tsv"
      awk -F'\t' -v p="$1" 'index($2, p) == 1 && $4 == "Create" && $7 != "-"' "$ST/cld.tsv"; } | wc -l
}
# recorded LINE N: N create/Create upcalls made since line LINE of the trace (a cheap poll)
recorded() { [ "$(tail -n +"$1" "$KTRACE" | grep -c -e ' umh_call: .* cmd="create"' -e ' cld_up: .* cmd=0 ')" -ge "$2" ]; }

N41=0
round() {  # TRACKER
    T=$1
    # ---------------------------------------------------------------- a new store, the clients re-establish
    kmsg "R1-$T-start"
    L0=$(wc -l < "$KTRACE")
    release
    [ "$FIRST" = 1 ] || nfsd_down
    tracker_stop
    rm -rf /var/lib/nfs/nfsdcltrack /var/lib/nfs/nfsdcld
    echo 10 > /proc/fs/nfsd/nfsv4gracetime
    tracker_start "$T"
    G0=$(gd_count)
    nfsd_up
    ok R1 "$T: the kernel uses \"$(tracker_used)\"" test "$(tracker_used)" = "NFSD: Using $(track_kind "$T") client tracking operations"
    if [ "$FIRST" = 1 ]; then mount_all; FIRST=0; else poke all; fi
    wait_until $((60 + N)) recorded "$L0" "$N41" \
        || fail R1 "$T: only $(tail -n +"$L0" "$KTRACE" | grep -c -e ' umh_call: .* cmd="create"' -e ' cld_up: .* cmd=0 ') of the $N41 v4.1+ clients were recorded (Create at RECLAIM_COMPLETE)"
    wait_until 60 gd_after "$G0" || fail R1 "$T: the first grace period (new store) did not end"
    hold v41 "$T" || return
    check_locks "$T: before the restart" v41

    # ---------------------------------------------------------------- phase 1: the v4.1+ storm, timed
    # (REPEAT restarts under the cld trackers, whose grace ends are close and
    # compared: the median; one under the upcall programs, far apart)
    case "$T" in daemon|nfsdcld) _rep=$REPEAT;; *) _rep=1;; esac
    : > "$ST/g1"
    for _k in $(seq "$_rep"); do
        restart "$GRACE" "R1-$T-reclaim$_k"
        poke v41
        wait_until $((GRACE + 60)) gd_after "$G0" || fail R1 "$T: no end of grace in $((GRACE + 60)) s"
        _g=$(grace_lasted)
        echo "$_g" >> "$ST/g1"
        awk -v s="$_g" -v g="$GRACE" 'BEGIN{exit !(s != "-" && s < g - 1)}' \
            && pass R1 "$T: storm $_k: grace ended early, ${_g} s of the configured $GRACE s after the restart, every v4.1+ client having reclaimed" \
            || fail R1 "$T: storm $_k: grace did not end early: ${_g} s of $GRACE s"
        wait_until 10 all_locked v41
        check_locks "$T: storm $_k" v41 && pass R1 "$T: storm $_k: every v4.1+ client's lock is back ($LOCKS)"
    done
    _r41=$LOCKS
    _g=$(grep -v -- - "$ST/g1" | stats | cut -d' ' -f1)
    [ "$_rep" -gt 1 ] && info R1 "$T: grace ends of the $_rep storms: $(tr '\n' ' ' < "$ST/g1")(median $_g s)"
    tables
    set -- $(client_lat "R1-$T-reclaim" | stats)
    _med=$1 _p90=$2 _nup=$3
    _start=$(start_lat "R1-$T-reclaim" | stats | cut -d' ' -f1)
    _nc=$(creates_in "R1-$T-reclaim")
    ok R1 "$T: one Create per v4.1+ client at its RECLAIM_COMPLETE ($_nc of $_rep x $N41)" test "$_nc" = $((_rep * N41))
    info R1 "$T: upcalls ${_start:--} ms to start (init/GraceStart, median), per client median $_med ms p90 $_p90 ms (n=$_nup)"

    ok R1 "$T: the v4.1+ lock holder is alive" kill -0 $HOLD_v41

    # ---------------------------------------------------------------- phase 2: the v4.0 clients
    # the v4.1+ locks are let go (phase 1 proved them); the v4.0 clients lock
    # (their OPEN_CONFIRM records them) and must reclaim at the next restart
    kmsg "R1-$T-v40-lock"
    kill "$HOLD_v41"; wait "$HOLD_v41" 2>/dev/null; HOLD_v41=
    hold v40 "$T" || return
    check_locks "$T: v4.0 locks before the restart" v40
    # long enough for every reclaim (less work than phase 1, which took _g s),
    # short because under cld it runs its whole time
    G2=$(awk -v g="$_g" -v m="$GRACE" 'BEGIN{ x = (g == "-" ? m : int(g + 10)); if (x < 15) x = 15; if (x > m) x = m; print x }')
    restart "$G2" "R1-$T-v40"
    poke all
    wait_until $((G2 + 60)) gd_after "$G0" || fail R1 "$T: no end of grace in $((G2 + 60)) s (v4.0 phase)"
    _g2=$(grace_lasted)
    wait_until 10 all_locked v40
    check_locks "$T: after the restart with v4.0 clients" v40 && pass R1 "$T: every v4.0 client's lock is back ($LOCKS; grace ${_g2} s of $G2 s)"
    _r40=$LOCKS
    ok R1 "$T: the v4.0 lock holder is alive" kill -0 $HOLD_v40
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$T" "$N41" "$GRACE" "$_g" "${_start:--}" "$_med" "$_p90" "$_nup" \
        "$_r41" "$_r40" "$G2" "$_g2" >> "$TSV"
}

# ------------------------------------------------------------------ setup
base_setup
/bin/busybox hostname e2e-storm
mkdir -p "$ST"
start_umh_trace || { fail setup "no kprobe events: the storm needs the kernel's trace"; exit 1; }
install_nfs_utils
cp -a "$OURS_ROOT/." / || fail setup "copy of the staged install"
[ -x "$OURS" ] && [ -f "$UNIT" ] || { fail setup "the staged install has no $OURS or $UNIT"; exit 1; }
busybox syslogd -n -O "$OUT/syslog.txt" &
modprobe nfsd && modprobe nfsv4 || { fail setup "modprobe nfsd nfsv4"; exit 1; }
mount -t nfsd nfsd /proc/fs/nfsd
mkdir -p "$PIPEFS" && mount -t rpc_pipefs rpc_pipefs "$PIPEFS"
start_cld_trace || { fail setup "no kprobe events on the cld pipe"; exit 1; }
echo "$LEASE" > /proc/fs/nfsd/nfsv4leasetime
# the export: a tmpfs (nfsd cannot export the overlay /), fsid=0: the NFSv4 root
mkdir -p "$EXPORT" && mount -t tmpfs -o mode=1777 storm "$EXPORT"
echo "$EXPORT 198.18.0.0/16(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=0)" > /etc/exports
exportfs -ra || fail setup "exportfs"
rpc.mountd -N 2 -N 3 || fail setup "rpc.mountd"
_t0=$(now)
make_net
info R1 "$N network namespaces with veth pairs on br0 in $(awk -v a="$_t0" -v b="$(now)" 'BEGIN{printf "%.0f", b - a}') s; grace $GRACE s, lease $LEASE s; trackers: $TRACKERS"
N41=$(clients v41 | wc -l)
while read -r i v a; do : > "$EXPORT/f$i"; done < "$ST/clients"
: > "$TSV"
FIRST=1
for t in $TRACKERS; do round "$t"; done
release
nfsd_down
tracker_stop

# ------------------------------------------------------------------ the trackers compared
# phase 1's grace seconds (medians under the cld trackers): ours no later than
# nfsdcld's (a tolerance of 10 % + 1 s for the noise of an emulated, shared
# machine: when the last client's RECLAIM_COMPLETE comes varies by seconds),
# and at most three quarters of either upcall program's. Only a storm of
# COMPARE_MIN clients or more is judged (the bench's): in a small one (CI's)
# every tracker's grace end is the clients' own return after the restart,
# seconds common to all, so the figures are reported, not compared
COMPARE_MIN=50
g_of() { awk -F'\t' -v t="$1" '$1 == t && $4 != "-" { print $4 }' "$TSV"; }
# compare WHAT CONDITION...: a check at full size, a note below it
compare() {
    _what=$1; shift
    if [ "$N" -ge "$COMPARE_MIN" ]; then ok R1 "$_what" "$@"
    else info R1 "$_what ($N clients: not judged below $COMPARE_MIN; $("$@" && echo holds || echo does not hold))"; fi
}
gd=$(g_of daemon) gn=$(g_of nfsdcld)
if [ -n "$gd" ] && [ -n "$gn" ]; then
    compare "our daemon ends the storm's grace no later than nfsdcld: ${gd} s against ${gn} s" \
        awk -v a="$gd" -v b="$gn" 'BEGIN{exit !(a <= b * 1.1 + 1)}'
fi
for u in cli c; do
    gx=$(g_of $u)
    [ -n "$gd" ] && [ -n "$gx" ] || continue
    compare "our daemon ends the storm's grace far earlier than the upcall program $u: ${gd} s against ${gx} s" \
        awk -v a="$gd" -v b="$gx" 'BEGIN{exit !(a <= b * 0.75)}'
done
exit 0
