#!/bin/sh
# The NFS server VM (PID 1, exec'd by initramfs-init.sh).  Two boots on one
# disk image (virtio-blk, ext4, made by run-all.sh), which holds both the
# export and /var/lib/nfs, so the client-tracking store lives on a real block
# device:
#
#   role a  S1 lifecycle, served by the INSTALLED program (scripts/install.sh,
#           pointed at through modprobe.d; no wrapper), store checked after
#           each step; S2 a client whose record was removed by hand is refused;
#           S4 early end of grace measured; S5 upcall latency, C vs ours; then
#           S3 part 1: the client VM mounts over the virtual network, takes
#           locks, writes; once its records are in the store the host kills
#           qemu mid-traffic (marker s3-kill).
#   role b  S3 part 2: boot again on the same disk: the store is read back,
#           nfsd starts, the client VM's clients reclaim.
#   roles c, d: the cld daemon (D1-D6, see role c); d then runs D7-D10 (role e,
#           which boots them alone for development).
#
# Upcalls are recorded by the kernel itself: nfsd_debug=NFSDDBG_PROC makes
# nfsd4_umh_cltrack_upcall() log cmd, arg, environment and return value, with
# kernel timestamps (upcalls.awk turns that into a table).  Our program's own
# debug log (nfs.conf debug=all during S1) goes to a syslogd -> syslog.txt.
. "$(dirname "$(sed -n 's/.*[[:space:]]e2e\.test=\([^[:space:]]*\).*/\1/p' /proc/cmdline)")/vm-lib.sh"

GRACE=$(param grace); GRACE=${GRACE:-10}
PROG_OVERRIDE=$(param prog)        # test another program as "ours" (no install.sh)
OURS_ROOT=$(param oursroot)        # our program as staged on the host by scripts/install.sh --destdir
STORE=/var/lib/nfs/nfsdcltrack
PIPEFS=/run/rpc_pipefs             # role c: /var/lib/nfs/rpc_pipefs, the daemons' default (rpc_pipefs.target)
OURS=/usr/local/sbin/nfsdcltrack   # where scripts/install.sh puts our program (the default)
REF=/usr/sbin/nfsdcltrack          # nfs-utils' C program, from the Debian package
CLTRACK=/sys/module/nfsd/parameters/cltrack_prog
SERVER_IP=192.0.2.1                # TEST-NET-1: exists only on the VMs' private link
[ -n "$PROG_OVERRIDE" ] && OURS=$PROG_OVERRIDE

finish() {
    say "collecting results"
    save_logs
    [ "$FAILS" -eq 0 ] && echo "RESULT: PASS" >> "$OUT/result.txt" || echo "RESULT: FAIL ($FAILS)" >> "$OUT/result.txt"
    power_off
}
save_logs() {
    dmesg > "$OUT/dmesg.txt" 2>&1
    upcalls > "$OUT/upcalls.tsv"
    awk -f "$HERE/upcalls.awk" "$UMHLOG" > "$OUT/upcalls-dprintk.tsv"
    cp "$KTRACE" "$OUT/umh-trace.log" 2>/dev/null
    awk -F'\t' '{printf "%-4s %-12s %12s..%-12s %-9s rc=%-4s %s %s %s %s\n", $1, $2, $3, $8, $4, $9, $10, $5, $6, $7}' \
        "$OUT/upcalls.tsv" > "$OUT/upcalls.log"
    if [ -e /run/cld-trace.ok ]; then
        cld_upcalls > "$OUT/cld.tsv"
        awk -F'\t' '{printf "%-4s %-12s %12s..%-12s %-10s xid=%-5s status=%-5s inprogress=%s queued=%s %s %s\n", $1, $2, $3, $7, $4, $5, $8, $9, $11, $6, ($10 == "-" ? "" : "clients: " $10)}' \
            "$OUT/cld.tsv" > "$OUT/cld.log"
    fi
}
# PID 1 must never exit (that panics the kernel; run-all.sh passes panic=-1 and -no-reboot anyway)
trap finish EXIT

# ------------------------------------------------------------------ store
store_recs() {
    _s=$STORE/clients.snap; _j=$STORE/clients.journal
    [ -f "$_s" ] || _s=/dev/null; [ -f "$_j" ] || _j=/dev/null
    awk -f "$HERE/store.awk" "$_s" "$_j"
}
rec() { store_recs | awk -v id="$1" '$1==id{print $2, $3}'; }   # "time sess" of ID, or nothing
store_epochs() {  # "current recovery"
    _s=$STORE/clients.snap; _j=$STORE/clients.journal
    [ -f "$_s" ] || _s=/dev/null; [ -f "$_j" ] || _j=/dev/null
    awk -v what=epochs -f "$HERE/store.awk" "$_s" "$_j"
}
journal_lines() { awk '!/^#/{n++} END{print n+0}' "$STORE/clients.journal" 2>/dev/null || echo 0; }
journal_gen() { head -1 "$STORE/clients.journal" 2>/dev/null | sed -n 's/.*gen=\([0-9]*\).*/\1/p'; }
STEP=0
# expect_store TAG LABEL [ "ID SESS TMIN TMAX [EPOCH]" ...]: the store holds exactly these
# live records (TMIN/TMAX bound the record time, "*" = any; EPOCH, when given,
# the cld epoch the record is in); a copy of the store
# files is kept in store-steps/NN-LABEL/.
expect_store() {
    _tag=$1 _label=$2; shift 2
    store_snapshot "$_label"
    verify_store "$SNAPDIR" "$_tag" "$_label" "$@"
}
# store_snapshot LABEL: copy the store files now (sets SNAPDIR); verify_store checks them later
store_snapshot() {
    STEP=$((STEP + 1))
    SNAPDIR=$OUT/store-steps/$(printf %02d $STEP)-$(echo "$1" | tr -c 'A-Za-z0-9.\n-' _ | cut -c1-40)
    mkdir -p "$SNAPDIR"; cp -a "$STORE/." "$SNAPDIR/" 2>/dev/null
}
verify_store() {  # DIR TAG LABEL [ "ID SESS TMIN TMAX" ...]
    _d=$1 _tag=$2 _label=$3; shift 3
    _s=$_d/clients.snap; _j=$_d/clients.journal
    [ -f "$_s" ] || _s=/dev/null; [ -f "$_j" ] || _j=/dev/null
    awk -f "$HERE/store.awk" "$_s" "$_j" > "$_d/records.txt" 2> "$_d/parse-errors.txt"
    : > "$_d/expected.txt"; for _e in "$@"; do echo "$_e" >> "$_d/expected.txt"; done
    _why=$(awk 'FILENAME==ARGV[1]{e[$1]=$0; next}
        { if (!($1 in e)) { printf "unexpected record %s(t=%s s=%s); ", $1, $2, $3; next }
          split(e[$1], x, " "); if (x[2] != $3) printf "%s: has_session %s, expected %s; ", $1, $3, x[2]
          if (x[3] != "*" && $2 < x[3]) printf "%s: time %s < %s; ", $1, $2, x[3]
          if (x[4] != "*" && $2 > x[4]) printf "%s: time %s > %s; ", $1, $2, x[4]
          if (x[5] != "" && x[5] != "*" && x[5] != $4) printf "%s: epoch %s, expected %s; ", $1, $4, x[5]
          seen[$1] = 1 }
        END { for (k in e) if (!(k in seen)) printf "missing record %s; ", k }' "$_d/expected.txt" "$_d/records.txt")
    [ -s "$_d/parse-errors.txt" ] && _why="$_why store lines of a wrong shape: $(cat "$_d/parse-errors.txt")"
    if [ -z "$_why" ]; then pass "$_tag" "store after $_label: $# record(s) as expected"
    else fail "$_tag" "store after $_label: $_why"; fi
}
# journal entries appended since line N (the entries themselves, without checksum)
journal_since() { grep -v '^#' "$STORE/clients.journal" 2>/dev/null | tail -n +$(( $1 + 1 )) | awk '{print $3, $4, $5, $6}'; }

# ------------------------------------------------------------------ nfsd helpers
nfsd_start() { rpc.nfsd -N 3 8 || fail "$1" "rpc.nfsd start"; }
nfsd_stop() { rpc.nfsd 0 || fail "$1" "rpc.nfsd 0"; }
dump_clients() {  # FILE: the server's view of its NFSv4 clients and their states
    for c in /proc/fs/nfsd/clients/*; do
        [ -d "$c" ] || continue
        echo "== $c"; cat "$c/info"; echo "-- states"; cat "$c/states"
    done > "$1" 2>&1
}
# locks_of FILE CLIENT-NAME-SUBSTRING NAME: count lock states of that client on the
# file NAME at the export's root (nfsd shows it relative to the superblock: "export/NAME")
locks_of() {
    awk -v who="$2" -v f="$3" '/^== /{name=""} /^name: /{name=$0}
        /type: lock/ && index(name, who) && (f == "" || index($0, "filename: \"" f "\"") || index($0, "/" f "\"")) {n++} END{print n+0}' "$1"
}
set_prog() { printf '%s' "$1" > "$CLTRACK"; [ "$(cat "$CLTRACK")" = "$1" ]; }
grace_secs() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == "-" || a == "-") print "-"; else printf "%.2f", b - a }'; }
GRACE_TSV=$OUT/grace.tsv
# measure_grace TAG LABEL EXPECT(early|full): report and check the last grace period
measure_grace() {
    set -- "$1" "$2" "$3" $(grace_window)
    _secs=$(grace_secs "$4" "$5")
    printf '%s\t%s\t%s\t%s\n' "$2" "$3" "$GRACE" "$_secs" >> "$GRACE_TSV"
    if [ "$_secs" = - ]; then fail "$1" "grace ($2): no gracedone seen"; return; fi
    case "$3" in
        early)  # ended at the last v4.1 client's RECLAIM_COMPLETE (its create upcall), well before the configured time
            _gap=$(rc_to_gracedone)
            if awk -v s="$_secs" -v d="$_gap" -v g="$GRACE" 'BEGIN{exit !(d != "-" && s - d > g - 3)}'; then
                info "$1" "grace ($2) not judged: the RECLAIM_COMPLETE came $(awk -v s="$_secs" -v d="$_gap" 'BEGIN{printf "%.1f", s - d}')s into a ${GRACE}s grace, too late to tell an early end; lasted ${_secs}s"
                return
            fi
            awk -v s="$_secs" -v g="$GRACE" -v d="$_gap" 'BEGIN{exit !(d != "-" && d >= 0 && d < 5 && s < g - 0.5)}' \
            && pass "$1" "grace ended early ($2): lasted ${_secs}s of the configured ${GRACE}s, gracedone ${_gap}s after the RECLAIM_COMPLETE create" \
            || fail "$1" "grace did not end early ($2): lasted ${_secs}s of the configured ${GRACE}s, gracedone ${_gap}s after the RECLAIM_COMPLETE create";;
        full) awk -v s="$_secs" -v g="$GRACE" 'BEGIN{exit !(s >= g - 0.5)}' \
            && pass "$1" "grace not ended early ($2): lasted ${_secs}s, configured ${GRACE}s" \
            || fail "$1" "grace ended early although a v4.0 client was still to reclaim ($2): ${_secs}s of ${GRACE}s";;
    esac
}
# gap between the latest create (RECLAIM_COMPLETE of a v4.1 client) and the gracedone after it
rc_to_gracedone() {
    upcalls | awk -F'\t' '$4=="create" && $6=="NFSDCLTRACK_CLIENT_HAS_SESSION=Y"{c=$3} $4=="gracedone"{g=$3} END{ if (c && g) printf "%.3f", g - c; else print "-" }'
}
hold_lock() {  # FILE: open read-write + exclusive lock (flock on NFS = whole-file POSIX lock), kept
    sh -c 'exec 9<>"$1"; flock 9 && exec sleep 100000' sh "$1" >/dev/null 2>&1 &
    echo $!
}
poke() { (ls -l "$@" >/dev/null 2>&1 &) ; }

# ------------------------------------------------------------------ setup
base_setup
/bin/busybox hostname e2e-server
start_umh_log
start_umh_trace && info setup "upcalls traced with kprobe events on call_usermodehelper (exact pairing)" \
    || info setup "no kprobe events: upcall exit statuses paired from the dprintk, first-in first-out"
# for post-mortems of a hung VM: the processes and the upcall log, every 10 s
( while sleep 10; do { echo "== $(now)"; ps -eo pid,stat,wchan:24,etime,args; } > "$OUT/ps.txt.new" 2>&1; mv "$OUT/ps.txt.new" "$OUT/ps.txt"; cp "$UMHLOG" "$OUT/umh-live.txt"; cp "$KTRACE" "$OUT/umh-trace-live.txt" 2>/dev/null; done ) &
modprobe virtio_blk && modprobe ext4 || fail setup "modprobe virtio_blk ext4"
wait_until 10 test -b /dev/vda || fail setup "no /dev/vda"
mkdir -p /var/lib/nfs
mount -t ext4 /dev/vda /var/lib/nfs || { fail setup "mount /dev/vda"; exit 1; }
info setup "store on $(awk '$2=="/var/lib/nfs"{print $1, $3, $4}' /proc/mounts) (virtio-blk disk image)"
install_nfs_utils            # after the mount: /var/lib/nfs content lands on the disk
mkdir -p /var/lib/nfs/export && chmod 1777 /var/lib/nfs/export
case "$ROLE" in c|d|e) ;; *) net_up $SERVER_IP/24;; esac
busybox syslogd -n -O "$OUT/syslog.txt" & SYSLOGD=$!

# install_staged TAG: put the tree that run-all.sh staged on the host
# (scripts/install.sh --destdir DIR --kernel-persist, as a package build would)
# into the VM's /: the program, its runtime, the man page, the modprobe.d file.
# Both boots install the same build, whatever happens to dist/ meanwhile.
install_staged() {
    if [ -n "$PROG_OVERRIDE" ]; then
        info "$1" "program under test given on the command line ($PROG_OVERRIDE): install.sh not used"
        printf 'options nfsd cltrack_prog=%s\n' "$OURS" > /etc/modprobe.d/nfsdcltrack-ts.conf
        return
    fi
    if cp -a "$OURS_ROOT/." /; then
        pass "$1" "installed the tree staged by scripts/install.sh --destdir --kernel-persist: $(find "$OURS_ROOT" -type f | wc -l) files, $(du -sh "$OURS_ROOT" | cut -f1)"
    else fail "$1" "copy of the staged install failed"; fi
    ok "$1" "modprobe.d file in place: $(grep -h '^options' /etc/modprobe.d/nfsdcltrack-ts.conf)" \
        grep -qx "options nfsd cltrack_prog=$OURS" /etc/modprobe.d/nfsdcltrack-ts.conf
}
install_ours() {  # TAG OPTIONS...: scripts/install.sh inside the VM
    _tag=$1; shift
    if "$REPO/scripts/install.sh" "$@" > "$OUT/install.log" 2>&1; then
        pass "$_tag" "scripts/install.sh $*: $(tail -1 "$OUT/install.log")"
    else
        fail "$_tag" "scripts/install.sh $* failed: $(tr '\n' ' ' < "$OUT/install.log")"
    fi
}

start_nfs_service() {  # TAG
    modprobe nfsd || { fail "$1" "modprobe nfsd"; exit 1; }
    modprobe nfsv4    # the client side too, now rather than at the first mount
    mount -t nfsd nfsd /proc/fs/nfsd
    mkdir -p "$PIPEFS" && mount -t rpc_pipefs rpc_pipefs "$PIPEFS"
    echo "$LEASE" > /proc/fs/nfsd/nfsv4leasetime
    echo "$GRACE" > /proc/fs/nfsd/nfsv4gracetime
    echo 16 > /proc/sys/sunrpc/nfsd_debug        # NFSDDBG_PROC: dprintk of every umh upcall
    pgrep -x nfsdcld >/dev/null && fail "$1" "nfsdcld is running (it would take precedence)"
    # fsid=0: the export is the NFSv4 pseudo-root (the VM's / is an overlayfs,
    # which nfsd cannot export).  It is on the disk, so its file handles
    # survive the crash of S3.
    echo "/var/lib/nfs/export 127.0.0.1(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=0) 192.0.2.0/24(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=0)" > /etc/exports
    exportfs -ra || fail "$1" "exportfs"
    rpc.mountd -N 2 -N 3 || fail "$1" "rpc.mountd"
}

# The end of a boot the host kills: the results so far, then the marker the
# host waits for, then nothing (no sync: what is on the disk is what the
# programs made durable themselves).
await_kill() {
    save_logs
    [ "$FAILS" -eq 0 ] && echo "RESULT: PASS" >> "$OUT/result.txt" || echo "RESULT: FAIL ($FAILS)" >> "$OUT/result.txt"
    trap - EXIT
    say "ready to be killed: marker $1"
    marker "$1"
    while :; do sleep 1; done
}

# ==================================================================== role a
role_a() {
    GRACE_TSV=$OUT/grace.tsv; : > "$GRACE_TSV"
    # ---------------------------------------------------------------- install
    kmsg S1-install
    install_staged S1
    [ -x "$OURS" ] || { fail S1 "$OURS is not installed"; exit 1; }
    info S1 "launcher: $(head -c 300 "$OURS" | tr '\n' '|')"
    start_nfs_service S1
    ok S1 "modprobe.d made the kernel run our program: cltrack_prog=$(cat $CLTRACK)" test "$(cat $CLTRACK)" = "$OURS"
    # our program's own debug log for S1 (the C program is not run in S1)
    printf '[nfsdcltrack]\ndebug = all\n' >> /etc/nfs.conf

    # ---------------------------------------------------------------- S1: start
    kmsg S1
    t0=$(date +%s)
    nfsd_start S1
    wait_upcall init 1 40 && pass S1 "init upcall at nfsd start" || fail S1 "no init upcall"
    # the store as init left it, saved now and checked below: the v4.2 client
    # mounts at once, while the grace period has most of its time to run
    store_snapshot "init (new store)"; D_INIT=$SNAPDIR; M_INIT=$(stat -c %a "$STORE" 2>/dev/null)
    mkdir -p /mnt/v42 /mnt/v40 /mnt/s5 /mnt/churn
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/v42 || fail S1 "mount vers=4.2"
    u=$(last_upcall init)
    ok S1 "init answered by $(fld "$u" 10), exit $(fld "$u" 9), in $(grace_secs "$(fld "$u" 3)" "$(fld "$u" 8)")s" \
        test "$(fld "$u" 10)" = "$OURS" -a "$(fld "$u" 9)" = 0
    dmesg | grep -q "NFSD: Using UMH upcall client tracking operations" && pass S1 "kernel selected UMH client tracking" \
        || { fail S1 "kernel did not select UMH tracking: $(dmesg | grep NFSD: | tail -3 | tr '\n' ' ')"; exit 1; }
    ok S1 "init created the storage dir $STORE with mode 0700" test "$M_INIT" = 700
    verify_store "$D_INIT" S1 "init (new store)"

    # ---------------------------------------------------------------- S1: v4.2 create at RECLAIM_COMPLETE
    wait_upcall create 1 30 && pass S1 "create upcall for the v4.2 client (RECLAIM_COMPLETE at mount)" || fail S1 "no create for v4.2"
    ID42=$(last_create_id Y)
    t1=$(date +%s)
    info S1 "v4.2 client id $ID42 ($(fld "$(last_upcall create)" 6))"
    # S4: a v4.1+ client only: its create lifts grace at once
    wait_upcall gracedone 1 $((GRACE + 20)) && pass S1 "gracedone upcall after the first start" || fail S1 "no gracedone after start"
    measure_grace S4 "first start, one v4.2 client mounting" early
    expect_store S1 "create (v4.2)" "$ID42 1 $t0 $t1"

    # ---------------------------------------------------------------- S1: v4.0 create at OPEN_CONFIRM
    mount -t nfs4 -o vers=4.0 127.0.0.1:/ /mnt/v40 || fail S1 "mount vers=4.0"
    t2=$(date +%s)
    echo data42 > /mnt/v42/f42; echo data40 > /mnt/v40/f40
    H42=$(hold_lock /mnt/v42/f42); H40=$(hold_lock /mnt/v40/f40)
    wait_upcall create 2 30 "" && [ -n "$(last_create_id N)" ] && pass S1 "create upcall for the v4.0 client (OPEN_CONFIRM)" \
        || fail S1 "no create for the v4.0 client"
    ID40=$(last_create_id N)
    t3=$(date +%s)
    info S1 "v4.0 client id $ID40"
    expect_store S1 "create (v4.0)" "$ID42 1 $t0 $t1" "$ID40 0 $t2 $t3"
    sleep 1
    dump_clients "$OUT/nfsd-clients-1-before-restart.txt"
    ok S1 "server holds both clients' locks before the restart" \
        test "$(locks_of "$OUT/nfsd-clients-1-before-restart.txt" "NFSv4.2" f42)" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-1-before-restart.txt" "NFSv4.0" f40)" -ge 1

    # ---------------------------------------------------------------- S1: restart, reclaim (check), S4 full grace
    T42=$(rec "$ID42" | cut -d' ' -f1)
    n_init=$(count init); n_check=$(count check); n_create=$(count create); n_gd=$(count gracedone)
    j0=$(journal_lines); g0=$(journal_gen)
    kmsg S1-restart
    nfsd_stop S1
    t4=$(date +%s)
    nfsd_start S1
    wait_upcall init $((n_init + 1)) 40 && pass S1 "init upcall after the nfsd restart" || fail S1 "no init after restart"
    poke /mnt/v42 /mnt/v40
    wait_upcall check $((n_check + 1)) 60 "$ID42" && ok S1 "check upcall for the v4.2 client's reclaim: exit 0" \
        test "$(fld "$(last_upcall check "$ID42")" 9)" = 0 || fail S1 "no check for the v4.2 client"
    wait_upcall check 1 60 "$ID40" && ok S1 "check upcall for the v4.0 client's reclaim: exit 0" \
        test "$(fld "$(last_upcall check "$ID40")" 9)" = 0 || fail S1 "no check for the v4.0 client"
    wait_upcall create $((n_create + 1)) 30 && pass S1 "create upcall after the v4.2 client's reclaim (RECLAIM_COMPLETE)" \
        || fail S1 "no create after reclaim"
    t5=$(date +%s)
    jnew=$(journal_since "$j0" | tr '\n' ';')
    info S1 "journal entries written during the reclaim: $jnew"
    # what the store must have seen: check of the v4.0 client updates its time; the
    # v4.2 client's check changes nothing; its create at RECLAIM_COMPLETE sets a new time
    if [ "$(journal_gen)" = "$g0" ]; then
        ok S1 "init and the reclaim wrote exactly two journal entries: v4.0 time update (its check), v4.2 new time (its create); init and the v4.2 check wrote nothing" \
            test "$(journal_since "$j0" | awk -v a="$ID40" -v b="$ID42" -v t="$t4" \
                '$1=="set" && $2==a && $4==0 && $3>=t {x++} $1=="set" && $2==b && $4==1 && $3>=t {y++} END{print NR, x+0, y+0}')" = "2 1 1"
    else
        info S1 "the journal was compacted during the reclaim (gen $g0 -> $(journal_gen)): its entries were not judged"
    fi
    expect_store S1 "reclaim (check v4.2, check v4.0, create v4.2)" "$ID42 1 $t4 $t5" "$ID40 0 $t4 $t5"
    wait_upcall gracedone $((n_gd + 1)) $((GRACE * 3 + 20)) && pass S1 "gracedone upcall after the restart" || fail S1 "no gracedone after restart"
    measure_grace S4 "restart, v4.0 + v4.2 clients reclaiming" full
    _g=$(rc_to_gracedone); info S4 "gracedone came ${_g}s after the v4.2 client's RECLAIM_COMPLETE (the v4.0 client kept grace open)"
    u=$(last_upcall gracedone)
    info S1 "gracedone argument $(fld "$u" 5) (= NFSDCLTRACK_GRACE_START of this boot)"
    expect_store S1 "gracedone (both clients reclaimed: nothing removed)" "$ID42 1 $t4 $t5" "$ID40 0 $t4 $t5"
    sleep 1
    dump_clients "$OUT/nfsd-clients-2-after-reclaim.txt"
    # (reclaimed state is opened by file handle: nfsd shows its file as "/")
    ok S1 "both clients' locks were reclaimed" \
        test "$(locks_of "$OUT/nfsd-clients-2-after-reclaim.txt" "NFSv4.2" "")" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-2-after-reclaim.txt" "NFSv4.0" "")" -ge 1
    ok S1 "lock holders still alive" kill -0 "$H42" "$H40"

    # ---------------------------------------------------------------- S2: a client whose record is gone is refused
    kmsg S2
    n_init=$(count init); n_create=$(count create); n_gd=$(count gracedone); n_c42=$(count check "$ID42"); n_c40=$(count check "$ID40")
    nfsd_stop S2
    # the administrator removes the v4.2 client's record by hand, with the program itself
    if env -i "$OURS" remove "$ID42"; then pass S2 "record of the v4.2 client removed by hand (nfsdcltrack remove)"; else fail S2 "nfsdcltrack remove by hand: exit $?"; fi
    expect_store S2 "removal by hand" "$ID40 0 $t4 $t5"
    t6=$(date +%s)
    nfsd_start S2
    wait_upcall init $((n_init + 1)) 40 || fail S2 "no init"
    poke /mnt/v42 /mnt/v40
    if wait_upcall check $((n_c42 + 1)) 60 "$ID42"; then
        u=$(last_upcall check "$ID42")
        ok S2 "check for the v4.2 client (no record) refused by our program: exit $(fld "$u" 9)" test "$(fld "$u" 9)" = 255
        [ "$(fld "$u" 11)" = 1 ] && [ ! -e /run/umh-trace.ok ] && info S2 "(that upcall overlapped another one: its exit status is paired first-in first-out)"
    else fail S2 "no check upcall for the v4.2 client"; fi
    wait_upcall check $((n_c40 + 1)) 60 "$ID40" && ok S2 "check for the v4.0 client (record kept) allowed: exit 0" \
        test "$(fld "$(last_upcall check "$ID40")" 9)" = 0 || fail S2 "no check for the v4.0 client"
    wait_upcall gracedone $((n_gd + 1)) $((GRACE * 3 + 20)) || fail S2 "no gracedone"
    measure_grace S4 "restart, v4.0 client reclaiming, v4.2 refused" full
    t7=$(date +%s)
    sleep 1
    dump_clients "$OUT/nfsd-clients-3-after-refusal.txt"
    ok S2 "server: the refused v4.2 client holds no lock on f42 after grace" test "$(locks_of "$OUT/nfsd-clients-3-after-refusal.txt" "NFSv4.2" "")" = 0
    ok S2 "server: the v4.0 client still holds its reclaimed lock on f40" test "$(locks_of "$OUT/nfsd-clients-3-after-refusal.txt" "NFSv4.0" "")" -ge 1
    # the lock the refused client could not reclaim is free for another client
    if timeout 30 sh -c 'exec 8<>/mnt/v40/f42; flock -n -x 8'; then pass S2 "another client (v4.0) can now take the lock on f42 the refused client lost"
    else fail S2 "another client could not lock f42: the refused client's lock survived"; fi
    # (the v4.0 client still holds f40: a second lock must be refused)
    if timeout 30 sh -c 'exec 8<>/mnt/v42/f40; flock -n -x 8'; then fail S2 "f40 could be locked by the v4.2 client although the v4.0 client reclaimed it"
    else pass S2 "the reclaimed lock on f40 still excludes other clients"; fi
    dmesg | grep -E 'NFS: |NFS4ERR|reclaim' | grep -v 'nfsd4_\|-->' | tail -5 > "$OUT/client-side-refusal.txt"
    n42=$(count create "$ID42")
    expected42=""
    if [ "$(upcalls | awk -F'\t' -v id="$ID42" -v p=S2 '$2==p && $4=="create" && $5==id' | wc -l)" -ge 1 ]; then
        expected42="$ID42 1 $t6 $t7"
        info S2 "the refused v4.2 client sent RECLAIM_COMPLETE anyway: create upcall, new record"
    fi
    expect_store S2 "refused reclaim and gracedone" "$ID40 0 $t6 $t7" ${expected42:+"$expected42"}

    # ---------------------------------------------------------------- S1: remove on unmount and on lease expiry
    kmsg S1-remove
    kill "$H42" "$H40" 2>/dev/null; wait "$H42" "$H40" 2>/dev/null
    n_rm=$(count remove)
    umount /mnt/v42 || fail S1 "umount v4.2"
    if [ -n "$expected42" ]; then
        wait_upcall remove $((n_rm + 1)) 30 "$ID42" && pass S1 "remove upcall at the v4.2 unmount (DESTROY_CLIENTID)" || fail S1 "no remove at the v4.2 unmount"
        expect_store S1 "remove (v4.2 unmount)" "$ID40 0 $t6 $t7"
    fi
    umount /mnt/v40 || fail S1 "umount v4.0"
    t8=$(date +%s)
    wait_upcall remove 1 $((LEASE * 4 + 20)) "$ID40" && pass S1 "remove upcall for the v4.0 client at lease expiry ($(( $(date +%s) - t8 ))s after unmount)" \
        || fail S1 "no remove for the v4.0 client"
    expect_store S1 "remove (v4.0 lease expiry)"
    nfsd_stop S1
    n_bad=$(upcalls | awk -F'\t' '($2 ~ /^S1/) && $9 != 0' | wc -l)
    ok S1 "every S1 upcall answered exit 0 ($(upcalls | awk -F'\t' '$2 ~ /^S1/' | wc -l) upcalls)" test "$n_bad" = 0
    if [ -s "$OUT/syslog.txt" ]; then info S1 "our program's own log (syslog): $(grep -c nfsdcltrack "$OUT/syslog.txt") lines, see syslog.txt"; fi
    # back to the defaults for the latency runs
    sed -i '/^\[nfsdcltrack\]$/,$d' /etc/nfs.conf

    # ---------------------------------------------------------------- nfsdcld takes precedence
    kmsg S1-nfsdcld
    _ni=$(count init)
    mkdir -p /run/nfsdcld-store
    if nfsdcld -p /run/rpc_pipefs -s /run/nfsdcld-store; then
        wait_until 10 pgrep -x nfsdcld >/dev/null
        nfsd_start S1
        sleep 2
        _sel=$(dmesg | grep -o 'NFSD: Using [a-zA-Z]* client tracking operations' | tail -1)
        ok S1 "with nfsdcld running the kernel uses it and makes no upcall: \"$_sel\"" \
            test "$_sel" = "NFSD: Using nfsdcld client tracking operations" -a "$(count init)" = "$_ni"
        nfsd_stop S1
        pkill -x nfsdcld; wait_until 10 sh -c '! pgrep -x nfsdcld >/dev/null'
    else
        info S1 "nfsdcld could not be started: precedence not checked"
    fi

    # ---------------------------------------------------------------- S5: latency, C vs ours
    s5_round() {  # PROG LABEL
        _tag=S5; _p=$1; _l=$2
        set_prog "$_p" || fail S5 "cannot set cltrack_prog to $_p"
        kmsg "S5-$_l"
        _ni=$(count init); _nc=$(count create); _ng=$(count gracedone); _nk=$(count check); _nr=$(count remove)
        nfsd_start S5
        wait_upcall init $((_ni + 1)) 40 || fail S5 "$_l: no init"
        mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/s5 || fail S5 "$_l: mount"
        wait_upcall create $((_nc + 1)) 30 || fail S5 "$_l: no create"
        wait_upcall gracedone $((_ng + 1)) $((GRACE + 20)) || fail S5 "$_l: no gracedone"
        measure_grace S4 "$_l: start, one v4.2 client mounting" early
        echo x > /mnt/s5/s5-file; _h=$(hold_lock /mnt/s5/s5-file); sleep 0.5
        nfsd_stop S5; nfsd_start S5
        wait_upcall init $((_ni + 2)) 40 || fail S5 "$_l: no init after restart"
        poke /mnt/s5
        wait_upcall check $((_nk + 1)) 60 || fail S5 "$_l: no check"
        wait_upcall create $((_nc + 2)) 30 || fail S5 "$_l: no create after reclaim"
        wait_upcall gracedone $((_ng + 2)) $((GRACE + 20)) || fail S5 "$_l: no gracedone after restart"
        measure_grace S4 "$_l: restart, one v4.2 client reclaiming" early
        info S4 "$_l: gracedone came $(rc_to_gracedone)s after the v4.2 client's RECLAIM_COMPLETE create"
        kill "$_h"; wait "$_h" 2>/dev/null
        umount /mnt/s5 || fail S5 "$_l: umount"
        wait_upcall remove $((_nr + 1)) 30 || fail S5 "$_l: no remove"
        # more create/remove samples: mount (RECLAIM_COMPLETE -> create), unmount (DESTROY_CLIENTID -> remove)
        for _i in 1 2 3 4 5; do
            mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/s5 || fail S5 "$_l: mount $_i"
            wait_upcall create $((_nc + 2 + _i)) 30 || fail S5 "$_l: no create $_i"
            umount /mnt/s5 || fail S5 "$_l: umount $_i"
            wait_upcall remove $((_nr + 1 + _i)) 30 || fail S5 "$_l: no remove $_i"
        done
        nfsd_stop S5
        _bad=$(upcalls | awk -F'\t' -v p="S5-$_l" '$2==p && $9 != 0' | wc -l)
        ok S5 "$_l: $(upcalls | awk -F'\t' -v p="S5-$_l" '$2==p' | wc -l) upcalls, all exit 0, all served by $_p" \
            test "$_bad" = 0 -a "$(upcalls | awk -F'\t' -v p="S5-$_l" -v g="$_p" '$2==p && $10!=g' | wc -l)" = 0
    }
    # warm both programs' files into the page cache first (the first exec of
    # anything read over 9p is slow), then alternate
    for i in 1 2 3 4 5; do
        env -i "$REF" -s /run/warm-ref check 00 >/dev/null 2>&1
        env -i "$OURS" -s /run/warm-ours check 00 >/dev/null 2>&1
    done
    s5_round "$REF" C

    # ---------------------------------------------------------------- S6: switch from the C program
    # A client holds a lock under the C program; nfsd stops; the administrator
    # imports the C program's main.sqlite and points the kernel at ours; after
    # the restart the client reclaims, answered by ours.
    kmsg S6
    set_prog "$REF"
    _ni=$(count init); _nc=$(count create); _ng=$(count gracedone)
    nfsd_start S6
    wait_upcall init $((_ni + 1)) 40 || fail S6 "no init"
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/s5 || fail S6 "mount"
    wait_upcall create $((_nc + 1)) 30 || fail S6 "no create"
    wait_upcall gracedone $((_ng + 1)) $((GRACE + 20)) || fail S6 "no gracedone"
    echo x > /mnt/s5/s6-file; _h=$(hold_lock /mnt/s5/s6-file); sleep 1
    ok S6 "the C program recorded the client (create served by $REF)" test "$(fld "$(last_upcall create "$ID42")" 10)" = "$REF"
    nfsd_stop S6
    env -i "$OURS" import /var/lib/nfs/nfsdcltrack/main.sqlite > "$OUT/import.txt" 2>&1; _rc=$?
    ok S6 "nfsdcltrack import main.sqlite (exit $_rc): $(head -1 "$OUT/import.txt")" test "$_rc" = 0
    expect_store S6 "import from the C program's main.sqlite" "$ID42 1 * *"
    set_prog "$OURS"
    _nk=$(count check "$ID42")
    nfsd_start S6
    poke /mnt/s5
    if wait_upcall check $((_nk + 1)) 60 "$ID42"; then
        u=$(last_upcall check "$ID42")
        ok S6 "after the switch the client reclaims: check served by $(fld "$u" 10), exit $(fld "$u" 9)" test "$(fld "$u" 10)" = "$OURS" -a "$(fld "$u" 9)" = 0
    else fail S6 "no check upcall after the switch"; fi
    wait_upcall gracedone $((_ng + 2)) $((GRACE + 20)) || fail S6 "no gracedone after the switch"
    sleep 1
    dump_clients "$OUT/nfsd-clients-s6-after-switch.txt"
    ok S6 "the lock taken under the C program was reclaimed under ours" test "$(locks_of "$OUT/nfsd-clients-s6-after-switch.txt" "NFSv4.2" "")" -ge 1
    kill "$_h"; wait "$_h" 2>/dev/null
    _nr=$(count remove)
    umount /mnt/s5 || fail S6 "umount"
    wait_upcall remove $((_nr + 1)) 30 || fail S6 "no remove"
    nfsd_stop S6
    expect_store S6 "unmount after the switch"

    s5_round "$OURS" ours

    # ---------------------------------------------------------------- uninstall / --kernel in the real kernel
    kmsg S1-uninstall
    if [ -z "$PROG_OVERRIDE" ]; then
        set_prog "$OURS"
        install_ours S1 --uninstall
        ok S1 "uninstall removed $OURS and the modprobe.d file" test ! -e "$OURS" -a ! -e /etc/modprobe.d/nfsdcltrack-ts.conf
        ok S1 "uninstall pointed the kernel back at /sbin/nfsdcltrack (cltrack_prog=$(cat $CLTRACK))" test "$(cat $CLTRACK)" = /sbin/nfsdcltrack
        install_ours S1 --kernel --no-selftest
        ok S1 "install.sh --kernel pointed the running kernel at $OURS" test "$(cat $CLTRACK)" = "$OURS"
        if [ "$(cat $CLTRACK)" != "$OURS" ] || ! [ -x "$OURS" ]; then
            info S1 "falling back to the staged install for S3"
            cp -a "$OURS_ROOT/." / && set_prog "$OURS"
        fi
    else
        set_prog "$OURS"
    fi

    # ---------------------------------------------------------------- S3 part 1: client VM, records, kill
    kmsg S3
    n_init=$(count init)
    nfsd_start S3
    wait_upcall init $((n_init + 1)) 40 || fail S3 "no init"
    marker s3-go
    say "waiting for the client VM"
    wait_marker client-ready 240 && pass S3 "client VM mounted v4.2 + v4.0 over the network, took locks, is writing" \
        || { fail S3 "client VM not ready: $(tail -3 "$SHARE/client/console.log" 2>/dev/null | tr '\n' ' ')"; exit 1; }
    m=$(hexof e2e-client)
    client_creates() { [ -n "$(last_create_id Y "$m")" ] && [ -n "$(last_create_id N "$m")" ]; }
    wait_until 60 client_creates || fail S3 "no create upcalls for the client VM"
    wait_until 30 quiet_upcalls
    IDC42=$(last_create_id Y "$m"); IDC40=$(last_create_id N "$m")
    info S3 "client VM ids: v4.2 $IDC42, v4.0 $IDC40"
    printf 'IDC42=%s\nIDC40=%s\nID42=%s\n' "$IDC42" "$IDC40" "$ID42" > "$OUT/ids"
    expect_store S3 "client VM's creates (before the crash)" "$IDC42 1 * *" "$IDC40 0 * *"
    dump_clients "$OUT/nfsd-clients-4-before-crash.txt"
    ok S3 "server holds the client VM's locks before the crash (v4.2 on c42, v4.0 on c40)" \
        test "$(locks_of "$OUT/nfsd-clients-4-before-crash.txt" "NFSv4.2 e2e-client" c42)" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-4-before-crash.txt" "NFSv4.0 e2e-client" c40)" -ge 1
    # more upcalls in flight when the VM dies: a local v4.2 client mounting and unmounting
    ( while :; do mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/churn 2>/dev/null && { echo $$ > /mnt/churn/churn; umount /mnt/churn; }; done ) &
    n_cr=$(count create)
    wait_upcall create $((n_cr + 2)) 60 >/dev/null || true
    info S3 "local churn running: $(( $(count create) - n_cr )) creates, $(count remove) removes so far"
    await_kill s3-kill
}

# ==================================================================== role b
role_b() {
    GRACE_TSV=$OUT/grace.tsv; : > "$GRACE_TSV"
    kmsg S3-boot2
    . "$SHARE/a/ids" 2>/dev/null || { fail S3 "no client ids from the first boot"; exit 1; }
    dmesg | grep -E 'EXT4-fs \(vda\)' > "$OUT/ext4.txt"
    grep -q 'recovery complete' "$OUT/ext4.txt" && info S3 "ext4 replayed its journal at mount: the first boot did stop uncleanly" \
        || info S3 "ext4 mount: $(tr '\n' ' ' < "$OUT/ext4.txt")"
    # acknowledged records must all be there, before anything runs
    recs=$(store_recs 2> "$OUT/parse-errors.txt")
    info S3 "store after the crash: $(echo "$recs" | tr '\n' ';') $(cat "$OUT/parse-errors.txt")"
    ok S3 "the client VM's v4.2 record survived the crash" sh -c "echo '$recs' | grep -q '^$IDC42 [0-9]* 1 '"
    ok S3 "the client VM's v4.0 record survived the crash" sh -c "echo '$recs' | grep -q '^$IDC40 [0-9]* 0 '"
    churn_left=$(echo "$recs" | awk -v id="$ID42" '$1==id' | wc -l)
    install_staged S3
    if [ -z "$PROG_OVERRIDE" ]; then
        env -i "$OURS" verify > "$OUT/verify.txt" 2>&1; vrc=$?
        case $vrc in
            0) pass S3 "nfsdcltrack verify: the store is sound after the crash";;
            218|2) info S3 "nfsdcltrack verify not available in this build (exit $vrc)";;
            *) fail S3 "nfsdcltrack verify after the crash: exit $vrc: $(head -5 "$OUT/verify.txt" | tr '\n' ' ')";;
        esac
    fi
    start_nfs_service S3
    ok S3 "kernel runs our program (cltrack_prog=$(cat $CLTRACK))" test "$(cat $CLTRACK)" = "$OURS"
    t0=$(date +%s)
    nfsd_start S3
    wait_upcall init 1 40 && pass S3 "init upcall" || fail S3 "no init upcall"
    marker b-serving
    if wait_upcall check 1 120 "$IDC42"; then
        ok S3 "the client VM's v4.2 client reclaimed: check exit $(fld "$(last_upcall check "$IDC42")" 9)" test "$(fld "$(last_upcall check "$IDC42")" 9)" = 0
    else fail S3 "no check upcall from the client VM's v4.2 client"; fi
    if wait_upcall check 1 120 "$IDC40"; then
        ok S3 "the client VM's v4.0 client reclaimed: check exit $(fld "$(last_upcall check "$IDC40")" 9)" test "$(fld "$(last_upcall check "$IDC40")" 9)" = 0
    else fail S3 "no check upcall from the client VM's v4.0 client"; fi
    u=$(upcalls | awk -F'\t' '$4=="check"' | head -1)
    info S3 "first reclaim (check) $(grace_secs "$(grace_window | cut -d' ' -f1)" "$(fld "$u" 3)")s after grace started"
    wait_upcall create 1 30 "$IDC42" || fail S3 "no create after the v4.2 reclaim"
    sleep 1
    dump_clients "$OUT/nfsd-clients-5-after-crash-reclaim.txt"
    # reclaimed state is opened by file handle: nfsd shows its file as "/"
    ok S3 "server holds the client VM's locks again after the crash (reclaimed by both clients)" \
        test "$(locks_of "$OUT/nfsd-clients-5-after-crash-reclaim.txt" "NFSv4.2 e2e-client" "")" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-5-after-crash-reclaim.txt" "NFSv4.0 e2e-client" "")" -ge 1
    wait_upcall gracedone 1 $((GRACE * 3 + 20)) && pass S3 "gracedone" || fail S3 "no gracedone"
    measure_grace S4 "after the crash, v4.0 + v4.2 clients reclaiming" full
    t1=$(date +%s)
    if [ "$churn_left" -gt 0 ]; then
        ok S3 "gracedone removed the record of the local client that died with the first boot and never reclaimed" \
            test -z "$(rec "$ID42")"
    fi
    expect_store S3 "reclaim and gracedone after the crash" "$IDC42 1 $t0 $t1" "$IDC40 0 $t0 $t1"
    marker s3-reclaimed
    wait_marker client-done 120 && pass S3 "client VM finished its checks" || fail S3 "client VM did not finish"
    cat "$SHARE/client/result.txt" 2>/dev/null | sed 's/^/client: /' > "$OUT/client-result.txt"
    n_bad=$(upcalls | awk -F'\t' '$9 != 0 && $9 != "-"' | wc -l)
    ok S3 "every upcall after the crash answered exit 0 ($(upcalls | wc -l) upcalls)" test "$n_bad" = 0
}

# ==================================================================== role c
# Our cld daemon (nfsdcld.ts) as the kernel's tracker, on its own disk image:
#   D1 chosen by the kernel: rpc_pipefs at the default place, the daemon started
#      as its systemd unit starts it, then nfsd: "Using nfsdcld client tracking
#      operations.", and no usermode-helper upcall is ever made
#   D2 lifecycle: Create at a v4.2 client's RECLAIM_COMPLETE and at a v4.0
#      client's OPEN_CONFIRM, the store after each step; nfsd restarts: the
#      clients reclaim their locks; a client removed with `nfsdcltrack remove`
#      is refused; Remove at unmount and at lease expiry
#   D3 early end of grace: with only v4.1+ clients to reclaim the kernel ends
#      grace at the last RECLAIM_COMPLETE; with a v4.0 client owed a reclaim it
#      does not
#   D4 nfsd restarted during grace (the recovery epoch is kept); the daemon
#      killed with SIGKILL mid-traffic and started again: nothing acknowledged
#      is lost, no nfsd thread is left waiting, the next reclaims are right
#   D5 fallback: no daemon at nfsd start -> the kernel uses the upcall, our CLI
#      serves the same store; then the daemon again; the clients reclaim across
#      each switch
# Every cld message is seen by the kernel's side through kprobe events
# (vm-lib.sh start_cld_trace, cld.awk): the message queued, the daemon's reply.
D_N=0
daemon_pid() {  # the running daemon (the Node process whose command line names DBIN), in this network namespace (not boot 5's container's)
    for _p in $(pgrep -f -- "$DBIN"); do
        [ "$(readlink "/proc/$_p/ns/net")" = "$(readlink /proc/1/ns/net)" ] || continue
        case "$(readlink "/proc/$_p/exe" 2>/dev/null)" in *node*|*bun*) echo "$_p"; return;; esac
    done
}
daemon_has_pipe() { ls -l "/proc/$DPID/fd" 2>/dev/null | grep -q " -> $PIPEFS/nfsd/cld\$"; }
daemon_watching() { ls -l "/proc/$DPID/fd" 2>/dev/null | grep -q 'inotify'; }
start_daemon() {  # TAG: run the unit's ExecStart (Type=forking: it returns once the detached daemon serves)
    D_N=$((D_N + 1))
    _t0=$(now)
    ( cd / && exec timeout 120 $DCMD ) > "$OUT/daemon-start-$D_N.txt" 2>&1; _rc=$?
    _t1=$(now)
    DPID=$(daemon_pid)
    if [ "$_rc" = 0 ] && [ -n "$DPID" ]; then
        pass "$1" "daemon started as its unit starts it ($DCMD): the first process exited 0 after $(grace_secs "$_t0" "$_t1")s, the detached daemon (pid $DPID, session $(ps -o sid= -p "$DPID" | tr -d ' ')) serves"
    else
        fail "$1" "daemon start ($DCMD): exit $_rc, pid '${DPID}': $(head -c 300 "$OUT/daemon-start-$D_N.txt" | tr '\n' ' ')"
    fi
    ok "$1" "the daemon watches $PIPEFS/nfsd for the pipe before nfsd starts (an inotify descriptor)" daemon_watching
}
tracker() { dmesg | grep -o 'NFSD: Using [a-zA-Z ]* client tracking operations' | tail -1; }
n_using() { dmesg | grep -c "NFSD: Using $1 client tracking operations"; }
nfsd_start_cld() {  # TAG [WHO]: nfsd start with the daemon (DPID; WHO, default ours) serving; checks that cld was chosen and the pipe opened
    _u0=$(n_using nfsdcld); _g0=$(cld_count GraceStart); _n0=$(upcalls | wc -l)
    _t0=$(now)
    c_nfsd_start "$1"
    _t1=$(now)
    ok "$1" "nfsd start #$NSTART ($(grace_secs "$_t0" "$_t1")s): the kernel uses ${2:-our daemon} (\"$(tracker)\")" \
        test "$(n_using nfsdcld)" = $((_u0 + 1)) -a "$(tracker)" = "NFSD: Using nfsdcld client tracking operations"
    ok "$1" "nfsd start #$NSTART: GraceStart answered (status $(fld "$(cld_last GraceStart)" 8)), the daemon holds the new pipe open, no upcall" \
        test "$(cld_count GraceStart)" = $((_g0 + 1)) -a "$(fld "$(cld_last GraceStart)" 8)" = 0 -a "$(upcalls | wc -l)" = "$_n0"
    daemon_has_pipe || fail "$1" "the daemon does not hold $PIPEFS/nfsd/cld: $(ls -l /proc/$DPID/fd 2>&1 | tail -n +2 | tr '\n' ' ')"
    # how long the kernel waited for the opener (it gives up after ~1 s): the
    # pipe's creation to the daemon's open, from the kprobe trace
    _w=$(awk 'function ts(l) { match(l, / [0-9]+\.[0-9]+: /); return substr(l, RSTART + 1, RLENGTH - 3) + 0 }
        / pipe_mk: / { t = ts($0); o = "" }
        / pipe_open: / && t != "" && o == "" { o = ts($0) }
        END { if (t != "" && o != "") printf "%.0f", (o - t) * 1000; else print "-" }' "$KTRACE")
    printf '%s\t%s\n' "$NSTART" "$_w" >> "$OUT/pipe-open-ms.tsv"
    [ "$_w" != - ] && info "$1" "nfsd start #$NSTART: the daemon opened the new pipe ${_w} ms after the kernel created it (the kernel waits up to ~1000 ms)"
}
NSTART=0
c_nfsd_start() { NSTART=$((NSTART + 1)); rpc.nfsd -N 3 8 || fail "$1" "rpc.nfsd start"; }
c_nfsd_stop() {  # TAG: rpc.nfsd 0, which waits for every nfsd thread: bounded, in case one waits for ever on the pipe
    rpc.nfsd 0 & _sp=$!
    if ! wait_until 60 sh -c "! kill -0 $_sp 2>/dev/null"; then
        fail "$1" "rpc.nfsd 0 did not return in 60 s: nfsd threads: $(nfsd_stacks)"
        return 1
    fi
    wait $_sp || fail "$1" "rpc.nfsd 0"
}
nfsd_stacks() {  # where each nfsd thread is (a cld wait shows cld_pipe_upcall)
    for _p in $(pgrep -x nfsd); do printf '%s: %s; ' "$_p" "$(head -4 /proc/$_p/stack 2>/dev/null | awk '{print $2}' | tr '\n' ' ')"; done
}
stuck_threads() { for _p in $(pgrep -x nfsd); do grep -l 'cld_pipe_upcall\|__cld_pipe_upcall\|wait_for_completion' /proc/$_p/stack 2>/dev/null; done | wc -l; }
# the last grace period: from "starting N-second grace period" to the GraceDone
# upcall; 0 when the kernel skipped it ("no clients to reclaim, skipping")
cld_grace() {
    _gs=$(dmesg | awk '/NFSD: starting [0-9]+-second grace period|NFSD: no clients to reclaim, skipping/ { match($0, /^\[ *[0-9]+\.[0-9]+\]/); s = substr($0, 2, RLENGTH - 2); gsub(/ /, "", s); g = s; sk = ($0 ~ /skipping/) } END { print g, sk + 0 }')
    case "$_gs" in *" 1") echo 0; return;; esac
    _gs=${_gs% *}
    _ge=$(cld_upcalls | awk -F'\t' -v gs="$_gs" '$4=="GraceDone" && $3 + 0 >= gs + 0 { print $3; exit }')
    grace_secs "${_gs:--}" "${_ge:--}"
}
# expect_model TAG LABEL: the store's live records (id and epoch, read with
# store.awk) are exactly what the cld upcalls the daemon acknowledged made of
# a new store (cld-model.awk: nfsdcld's epoch rules), harness events included
expect_model() {
    store_snapshot "$2"
    _s=$SNAPDIR/clients.snap; _j=$SNAPDIR/clients.journal
    [ -f "$_s" ] || _s=/dev/null; [ -f "$_j" ] || _j=/dev/null
    awk -f "$HERE/store.awk" "$_s" "$_j" 2> "$SNAPDIR/parse-errors.txt" | awk '{print $1, $4}' > "$SNAPDIR/records.txt"
    _ep=$(awk -v what=epochs -f "$HERE/store.awk" "$_s" "$_j")
    cld_upcalls > "$SNAPDIR/cld.tsv"
    sort -t "$(printf '\t')" -k7,7n "$SNAPDIR/cld.tsv" | awk -f "$HERE/cld-model.awk" > "$SNAPDIR/expected.txt"
    if cmp -s "$SNAPDIR/records.txt" "$SNAPDIR/expected.txt" && [ ! -s "$SNAPDIR/parse-errors.txt" ]; then
        pass "$1" "store after $2: $(wc -l < "$SNAPDIR/expected.txt") live record(s), each in the epoch the acknowledged upcalls put it (epochs $_ep)"
    else
        fail "$1" "store after $2: has [$(tr '\n' ';' < "$SNAPDIR/records.txt")] expected [$(tr '\n' ';' < "$SNAPDIR/expected.txt")] (epochs $_ep) $(cat "$SNAPDIR/parse-errors.txt")"
    fi
}
# rescue XID CMD: answer an orphaned upcall ourselves (-EREMOTEIO, 1067 bytes,
# one write), so that the nfsd thread waiting for it goes on
rescue_upcall() {
    _x=$1
    { printf '\002'; printf "\\$(printf %03o "$2")"; printf '\207\377'
      for _i in 0 1 2 3; do printf "\\$(printf %03o $(( (_x >> (8 * _i)) & 255 )))"; done
      head -c 1059 /dev/zero; } > /run/rescue.bin
    dd if=/run/rescue.bin of="$PIPEFS/nfsd/cld" bs=1067 count=1 2>/dev/null
}
cld_measure_grace() {  # TAG LABEL early|full
    _s=$(cld_grace)
    printf '%s\t%s\t%s\t%s\n' "$2" "$3" "$GRACE" "$_s" >> "$GRACE_TSV"
    case "$3" in
        early) awk -v s="$_s" -v g="$GRACE" 'BEGIN{exit !(s != "-" && s < g - 0.5)}' \
            && pass "$1" "grace ended early ($2): lasted ${_s}s of the configured ${GRACE}s$(dmesg | grep -q 'all clients done reclaiming' && echo ', kernel: "all clients done reclaiming"')" \
            || fail "$1" "grace did not end early ($2): lasted ${_s}s of the configured ${GRACE}s";;
        full) awk -v s="$_s" -v g="$GRACE" 'BEGIN{exit !(s != "-" && s >= g - 0.5)}' \
            && pass "$1" "grace not ended early ($2): lasted ${_s}s, configured ${GRACE}s" \
            || fail "$1" "grace ended early or not at all ($2): ${_s}s of ${GRACE}s";;
        *) info "$1" "grace ($2): lasted ${_s}s of the configured ${GRACE}s";;
    esac
}
offered() { fld "$(cld_last GraceStart)" 10; }
# A v4.0 client that reclaims is not recorded again by a Create under cld v2
# (its reclaim OPENs need no OPEN_CONFIRM, the kernel checks reclaims against
# GraceStart's list): nfsdcld drops it with the recovery epoch at GraceDone;
# our daemon keeps it, having read nfsd's client list then. v40_kept checks
# that and tells the model (cld-model.awk) what the harness saw: the client's
# reclaimed lock. Its next OPEN_CONFIRM, which only a new open owner needs,
# records it too: v40_new_owner makes one, another user (uid 60000+N)
# creating a file on the v4.0 mount.
V40_USERS=0 V40_CARRIED=0
v40_kept() {  # TAG CLIENTS-DUMP: after a GraceDone at which the v4.0 client held its reclaimed lock
    if [ "$(locks_of "$2" "NFSv4.0" "")" -ge 1 ]; then
        echo "e2e-event: v40-reclaimed $ID40" > $TRACEFS/trace_marker
        ok "$1" "the v4.0 client, which reclaimed without a Create, is still in the store after GraceDone (nfsdcld drops it)" test -n "$(rec "$ID40")"
        V40_CARRIED=1   # no Remove will come from the kernel for it: the daemon removes it when nfsd destroys it
    fi
}
no_rec() { [ -z "$(rec "$1")" ]; }
v40_new_owner() {  # TAG
    V40_USERS=$((V40_USERS + 1)); V40_CARRIED=0
    _n=$(cld_count Create "$N40")
    setpriv --reuid=$((60000 + V40_USERS)) --regid=$((60000 + V40_USERS)) --clear-groups sh -c "echo u > /mnt/v40/user-$V40_USERS" \
        || fail "$1" "uid $((60000 + V40_USERS)) cannot create a file on the v4.0 mount"
    cld_wait Create $((_n + 1)) 30 "$N40" && pass "$1" "the v4.0 client is recorded again at a new open owner's OPEN_CONFIRM (uid $((60000 + V40_USERS)) opens a file): Create" \
        || fail "$1" "no Create at the v4.0 client's new open owner's OPEN_CONFIRM"
}   # the clients the last GraceStart offered, "|"-separated
is_offered() { offered | tr '|' '\n' | grep -qxF -- "$1"; }
# the client names of the v4.0 / v4.2 mounts, as the kernel sends them
cname() { for _c in /proc/fs/nfsd/clients/*/info; do sed -n 's/^name: "\(.*\)"$/\1/p' "$_c"; done | grep -F "NFSv$1 " | head -1; }

# daemon_cmd TAG: the daemon's command line, as its systemd unit starts it
# (scripts/install.sh puts the unit in the staged tree); without a unit there,
# dist/nfsdcld from the checkout
daemon_cmd() {
    UNIT=$(find "$OURS_ROOT" -name '*.service' 2>/dev/null | grep -i cld | head -1)
    if [ -n "$UNIT" ] && [ -z "$PROG_OVERRIDE" ]; then
        DCMD=$(sed -n 's/^ExecStart=-\{0,1\}//p' "$UNIT" | tail -1)
        info "$1" "unit ${UNIT#"$OURS_ROOT"} staged by scripts/install.sh: ExecStart=$DCMD, Type=$(sed -n 's/^Type=//p' "$UNIT")"
    else
        DCMD="$REPO/dist/nfsdcld"
        info "$1" "no cld unit in the tree staged by scripts/install.sh: the daemon runs from the checkout ($DCMD, no options, as the unit would)"
    fi
    DBIN=${DCMD%% *}
    [ -x "$DBIN" ] || { fail "$1" "$DBIN is not executable"; exit 1; }
    info "$1" "daemon launcher: $(head -c 200 "$DBIN" | tr '\n' '|')"
    if [ -n "$UNIT" ] && [ -z "$PROG_OVERRIDE" ]; then
        # what systemd does for the unit before ExecStart: its state directory, its bounding set
        _sd=$(sed -n 's/^StateDirectory=//p' "$UNIT" | tail -1)
        [ -n "$_sd" ] && mkdir -p -m "$(sed -n 's/^StateDirectoryMode=//p' "$UNIT" | tail -1 | grep . || echo 0755)" "/var/lib/$_sd"
        if grep -q '^CapabilityBoundingSet=' "$UNIT"; then
            _cb=-all; for _c in $(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tail -1); do _cb="$_cb,+$(printf '%s' "${_c#CAP_}" | tr 'A-Z' 'a-z')"; done
            DCMD="setpriv --bounding-set=$_cb -- $DCMD"
        fi
        info "$1" "as systemd would: StateDirectory=${_sd:-none} made, the daemon run as: $DCMD"
    fi
    # the daemon's own debug log (syslog -> syslog.txt)
    printf '[nfsdcld]\ndebug = 1\n' >> /etc/nfs.conf
}
churn41_started() { [ "$(cld_upcalls | awk -F'\t' '$6 ~ /NFSv4\.1 / && $7 != "-"' | wc -l)" -ge 2 ]; }
# verify_cli TAG: nfsdcltrack verify on the store
verify_cli() {
    env -i "$OURS" verify > "$OUT/verify.txt" 2>&1; _rc=$?
    # Known, reported: a journal entry's "previous state" is written as the
    # record's live view (Txn.put: get() drops dead memberships, or the whole
    # record when none is live), while verify compares it with the record as
    # stored, so a change to a client whose record has a membership in an
    # epoch that is over is reported as "... says its previous state was S,
    # but it was S and epoch N" or "... was absent, but it was S".  Replay is
    # unaffected (prev states are not replayed; the records are checked by
    # expect_model).  Any other finding fails.
    _other=$(grep -v "^/\|^\$" "$OUT/verify.txt" | grep -v 'says its previous state was .*, but it was .* and epoch [0-9]*$' | grep -v 'says its previous state was absent, but it was ')
    if [ "$_rc" = 0 ]; then pass "$1" "nfsdcltrack verify: the store the daemon wrote is sound"
    elif [ -z "$_other" ] && grep -q 'says its previous state was' "$OUT/verify.txt"; then
        info "$1" "nfsdcltrack verify (exit $_rc) reports only the known prev-state mismatch (a dead older membership): $(grep -c 'says its previous state' "$OUT/verify.txt") entr(y/ies), see verify.txt"
    else fail "$1" "nfsdcltrack verify: exit $_rc: $(head -3 "$OUT/verify.txt" | tr '\n' ' ')"; fi
}

# cld_setup TAG: the start of a boot of the daemon's: the staged install, the
# daemon's command line, nfs-utils' services, the cld trace (nfsd not started)
cld_setup() {
    GRACE_TSV=$OUT/grace.tsv; : > "$GRACE_TSV"
    PIPEFS=/var/lib/nfs/rpc_pipefs
    install_staged "$1"
    daemon_cmd "$1"
    start_nfs_service "$1"
    ok "$1" "the fallback upcall is our program (cltrack_prog=$(cat $CLTRACK))" test "$(cat $CLTRACK)" = "$OURS"
    start_cld_trace && info "$1" "cld messages traced with kprobe events on rpc_queue_upcall and cld_pipe_downcall" \
        || { fail "$1" "no kprobe events on the cld pipe: $(tail -2 $TRACEFS/error_log 2>/dev/null | tr '\n' ' ')"; exit 1; }
}

role_c() {
    kmsg D1-install
    cld_setup D1
    mkdir -p /mnt/v42 /mnt/v40 /mnt/churn

    # ---------------------------------------------------------------- D1: chosen by the kernel
    kmsg D1
    start_daemon D1
    t0=$(date +%s)
    nfsd_start_cld D1
    u=$(cld_last GetVersion)
    ok D1 "GetVersion answered status $(fld "$u" 8) in $(grace_secs "$(fld "$u" 3)" "$(fld "$u" 7)")s (the daemon opened the pipe within the kernel's ~1 s)" test "$(fld "$u" 8)" = 0
    ok D1 "GraceStart on the new store offers no client" test "$(fld "$(cld_last GraceStart)" 9)" = 0
    # nobody to reclaim: the kernel skips the grace period (GraceDone at once)
    cld_wait GraceDone 1 10
    ok D1 "nobody to reclaim: the kernel skipped the grace period (\"$(dmesg | grep -o 'NFSD: no clients to reclaim, skipping NFSv4 grace period' | tail -1)\"), GraceDone $(grace_secs "$(fld "$(cld_last GraceStart)" 7)" "$(fld "$(cld_last GraceDone)" 3)")s after GraceStart; epochs $(store_epochs)" \
        test "$(store_epochs)" = "2 0" -a "$(cld_grace)" = 0

    # ---------------------------------------------------------------- D2: Create at RECLAIM_COMPLETE (v4.2)
    kmsg D2-create
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/v42 || fail D2 "mount vers=4.2"
    N42=$(cname 4.2)
    cld_wait Create 1 30 "$N42" && ok D2 "Create for the v4.2 client \"$N42\" (RECLAIM_COMPLETE at mount): status $(fld "$(cld_last Create "$N42")" 8)" \
        test "$(fld "$(cld_last Create "$N42")" 8)" = 0 || fail D2 "no Create for the v4.2 client \"$N42\""
    ID42=$(hexof "$N42")
    t1=$(date +%s)
    expect_store D2 "Create (v4.2)" "$ID42 0 $t0 $t1 2"
    cld_measure_grace D3 "first start, nobody to reclaim (grace skipped)" info
    echo x > /mnt/v42/f42; H42=$(hold_lock /mnt/v42/f42)

    # ---------------------------------------------------------------- D2/D3: restart, only a v4.1+ client to reclaim
    kmsg D2-restart1
    sleep 1
    c_nfsd_stop D2
    t2=$(date +%s)
    nfsd_start_cld D2
    ok D2 "GraceStart offered the v4.2 client only (\"$(offered)\")" test "$(offered)" = "$N42"
    poke /mnt/v42
    cld_wait Create 2 60 "$N42" || fail D2 "no Create at the v4.2 client's RECLAIM_COMPLETE after the restart"
    cld_wait GraceDone 2 $((GRACE + 20)) || fail D2 "no GraceDone after restart 1"
    cld_measure_grace D3 "restart, one v4.2 client reclaiming" early
    t3=$(date +%s)
    sleep 1
    dump_clients "$OUT/nfsd-clients-c1-after-restart1.txt"
    ok D2 "the v4.2 client reclaimed its lock (restart 1)" test "$(locks_of "$OUT/nfsd-clients-c1-after-restart1.txt" "NFSv4.2" "")" -ge 1
    expect_store D2 "restart 1 (v4.2 reclaimed, GraceDone)" "$ID42 0 $t2 $t3 3"
    expect_model D2 "restart 1"

    # ---------------------------------------------------------------- D2: Create at OPEN_CONFIRM (v4.0)
    kmsg D2-v40
    mount -t nfs4 -o vers=4.0 127.0.0.1:/ /mnt/v40 || fail D2 "mount vers=4.0"
    N40=$(cname 4.0)
    ID40=$(hexof "$N40")
    sleep 1
    ok D2 "no Create for the v4.0 client \"$N40\" at mount (SETCLIENTID_CONFIRM)" test "$(cld_count Create "$N40")" = 0
    echo y > /mnt/v40/f40; H40=$(hold_lock /mnt/v40/f40)
    cld_wait Create 1 30 "$N40" && pass D2 "Create for the v4.0 client at its first OPEN_CONFIRM" || fail D2 "no Create for the v4.0 client"
    t4=$(date +%s)
    expect_store D2 "Create (v4.0)" "$ID42 0 $t2 $t3 3" "$ID40 0 $t3 $t4 3"
    expect_model D2 "Create (v4.0)"
    sleep 1
    dump_clients "$OUT/nfsd-clients-c2-before-restart2.txt"
    ok D2 "the server holds both clients' locks" \
        test "$(locks_of "$OUT/nfsd-clients-c2-before-restart2.txt" "NFSv4.2" "")" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-c2-before-restart2.txt" "NFSv4.0" f40)" -ge 1

    # ---------------------------------------------------------------- D4: nfsd restarted during grace
    kmsg D4-restart-in-grace
    c_nfsd_stop D4
    t5=$(date +%s)
    nfsd_start_cld D4
    ok D4 "GraceStart offered both clients" sh -c "test \"\$(printf '%s\n' '$(offered)' | tr '|' '\n' | sort | tr '\n' '|')\" = \"\$(printf '%s\n%s\n' '$N40' '$N42' | sort | tr '\n' '|')\""
    ep_a=$(store_epochs)
    poke /mnt/v42 /mnt/v40
    cld_wait Create 3 60 "$N42" || fail D4 "no Create at the v4.2 RECLAIM_COMPLETE (restart 2)"
    # nfsd stops again before the grace period ends (the v4.0 client is owed a reclaim)
    ok D4 "restarted during grace: no GraceDone yet" test "$(cld_count GraceDone)" = 2
    c_nfsd_stop D4
    nfsd_start_cld D4
    ep_b=$(store_epochs)
    ok D4 "the restart during grace kept the recovery epoch (epochs $ep_a -> $ep_b) and GraceStart offered both clients again" \
        sh -c "test '${ep_a#* }' = '${ep_b#* }' -a '${ep_b% *}' = $(( ${ep_a% *} + 1 )) && test \"\$(printf '%s\n' '$(offered)' | tr '|' '\n' | sort | tr '\n' '|')\" = \"\$(printf '%s\n%s\n' '$N40' '$N42' | sort | tr '\n' '|')\""
    poke /mnt/v42 /mnt/v40
    cld_wait Create 4 60 "$N42" || fail D4 "no Create at the v4.2 RECLAIM_COMPLETE (restart 3)"
    cld_wait GraceDone 3 $((GRACE * 3 + 20)) || fail D4 "no GraceDone after restart 3"
    cld_measure_grace D3 "restart, v4.2 and v4.0 clients reclaiming" full
    t6=$(date +%s)
    sleep 1
    dump_clients "$OUT/nfsd-clients-c3-after-restart-in-grace.txt"
    ok D4 "both clients reclaimed their locks after the restart during grace" \
        test "$(locks_of "$OUT/nfsd-clients-c3-after-restart-in-grace.txt" "NFSv4.2" "")" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-c3-after-restart-in-grace.txt" "NFSv4.0" "")" -ge 1
    n40c=$(cld_upcalls | awk -F'\t' -v a="$N40" '$4=="Create" && $6==a && $2 ~ /^D4/' | wc -l)
    ok D4 "the v4.0 client's reclaim made no Create (a reclaim OPEN needs no OPEN_CONFIRM; cld v2 checks reclaims in the kernel): $n40c" test "$n40c" = 0
    v40_kept D4 "$OUT/nfsd-clients-c3-after-restart-in-grace.txt"
    expect_model D4 "restart during grace, reclaims, GraceDone (the v4.0 client kept from the recovery epoch)"
    kmsg D4-v40-open
    v40_new_owner D4
    E40="$ID40 0 * *"
    expect_model D4 "the v4.0 client's new open owner"

    # ---------------------------------------------------------------- D2: removed by the admin -> refused
    kmsg D2-admin-remove
    c_nfsd_stop D2
    echo "e2e-event: admin-remove $ID42" > $TRACEFS/trace_marker
    if env -i "$OURS" remove "$ID42" > "$OUT/admin-remove.txt" 2>&1; then pass D2 "nfsdcltrack remove of the v4.2 client on the daemon's store (the daemon running)"
    else fail D2 "nfsdcltrack remove: exit $?: $(cat "$OUT/admin-remove.txt")"; fi
    env -i "$OURS" list > "$OUT/admin-list.txt" 2>&1
    ok D2 "nfsdcltrack list no longer shows it" sh -c "! grep -q '^$ID42 ' '$OUT/admin-list.txt'"
    t7=$(date +%s)
    nfsd_start_cld D2
    ok D2 "GraceStart does not offer the removed client (offered: \"$(offered)\")" sh -c "! printf '%s\n' '$(offered)' | tr '|' '\n' | grep -qxF '$N42'"
    poke /mnt/v42 /mnt/v40
    cld_wait GraceDone 4 $((GRACE * 3 + 20)) || fail D2 "no GraceDone (admin remove)"
    if [ -n "$E40" ]; then cld_measure_grace D3 "restart, v4.0 client reclaiming, v4.2 refused" full
    else cld_measure_grace D3 "restart, v4.2 refused, nobody listed" info; fi
    sleep 1
    dump_clients "$OUT/nfsd-clients-c4-after-refusal.txt"
    ok D2 "the removed v4.2 client holds no lock after grace (its reclaim was refused)" test "$(locks_of "$OUT/nfsd-clients-c4-after-refusal.txt" "NFSv4.2" "")" = 0
    if timeout 30 sh -c 'exec 8<>/mnt/v40/f42; flock -n -x 8'; then pass D2 "another client can take the lock the refused client lost"
    else fail D2 "f42 still locked: the refused client's lock survived"; fi
    [ -n "$E40" ] && ok D2 "the v4.0 client still holds its reclaimed lock" test "$(locks_of "$OUT/nfsd-clients-c4-after-refusal.txt" "NFSv4.0" "")" -ge 1
    v40_kept D2 "$OUT/nfsd-clients-c4-after-refusal.txt"
    expect_model D2 "admin remove, refused reclaim, GraceDone"

    # ---------------------------------------------------------------- D4: the daemon killed with SIGKILL mid-traffic
    kmsg D4-sigkill
    # the churn's mounts are the same NFS client as /mnt/v42 (one client per
    # server, one client id): unmount it first, which is also its Remove
    kill "$H42" 2>/dev/null; wait "$H42" 2>/dev/null
    n_r42=$(cld_count Remove "$N42")
    umount /mnt/v42 || fail D2 "umount v4.2"
    cld_wait Remove $((n_r42 + 1)) 30 "$N42" && pass D2 "Remove at the v4.2 unmount (DESTROY_CLIENTID)" || fail D2 "no Remove at the v4.2 unmount"
    expect_model D2 "Remove (v4.2 unmount)"
    ( while :; do mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/churn 2>/dev/null && { echo $$ > /mnt/churn/churn; umount /mnt/churn; }; done ) > /dev/null 2>&1 &
    CHURN=$!
    n_cr=$(cld_count Create)
    cld_wait Create $((n_cr + 2)) 60 || fail D4 "the churn made no Creates"
    sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.2f", 0.2 + (r % 1000) / 1000}')"
    # A message the daemon has read in full but not answered has no time-out in
    # the kernel: its nfsd thread would wait for ever, whatever daemon comes
    # next (the protocol's, not a daemon's, limit: nfsdcld is the same).  So the
    # daemon is stopped first (SIGSTOP: it reads nothing more), and killed only
    # when every message queued so far is answered; what the churn queues from
    # then on waits in the pipe, is re-queued when the dead daemon's descriptor
    # closes, and must be served by the next daemon.
    tries=0
    while :; do
        tries=$((tries + 1))
        kill -STOP "$DPID"; echo "e2e-event: stopped $tries" > $TRACEFS/trace_marker; sleep 0.3
        # unanswered messages queued before the stop may have been read; those queued after cannot
        cld_upcalls | awk -F'\t' -v m="stopped $tries" '$4 == "event" && $6 == m { t = $3 } $4 != "event" && $7 == "-" { u[++n] = $3 }
            END { if (t == "") exit 1; for (i = 1; i <= n; i++) if (u[i] + 0 < t + 0) exit 1 }' && break
        [ $tries -ge 30 ] && break
        kill -CONT "$DPID"; sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.2f", 0.05 + (r % 300) / 1000}')"
    done
    kill -9 "$DPID"; t_kill=$(awk '{print $1}' /proc/uptime)
    echo "e2e-phase: D4-killed" > $TRACEFS/trace_marker
    wait_until 10 sh -c "! kill -0 $DPID 2>/dev/null"
    n_before=$(cld_upcalls | awk -F'\t' '$7 != "-" && $2 == "D4-sigkill"' | wc -l)
    info D4 "daemon SIGKILLed mid-traffic (stopped $tries time(s) until nothing read was unanswered), $n_before churn upcalls answered before"
    # what the daemon had answered before it died must be in the store, now
    expect_model D4 "the daemon's SIGKILL (every acknowledged Create/Remove, nothing else)"
    sleep 1
    start_daemon D4
    echo "e2e-event: daemon-restarted" > $TRACEFS/trace_marker
    # queued upcalls wait up to 30 s for an opener; the new daemon answers them all
    if wait_until 40 cld_quiet; then
        # queued while no daemon had the pipe: re-queued at the kill, or queued between the kill and the restart
        n_rq=$(cld_upcalls | awk -F'\t' '$4 == "event" && $6 == "daemon-restarted" { t = $3 } { r[NR] = $0 }
            END { for (i = 1; i <= NR; i++) { split(r[i], f, "\t"); if (f[4] != "event" && ((f[2] == "D4-killed" && f[3] + 0 < t + 0) || (f[2] == "D4-sigkill" && f[11] > 1))) n++ } print n + 0 }')
        pass D4 "after the restart every cld upcall is answered: no nfsd thread left waiting ($(stuck_threads) in a cld wait; $n_rq upcall(s) queued while the daemon was down, served by the new one)"
    else
        fail D4 "cld upcalls left unanswered after the daemon's restart: $(cld_upcalls | awk -F'\t' '$7=="-"{printf "%s xid %s %s (queued %s times); ", $4, $5, $6, $11}') nfsd threads: $(nfsd_stacks)"
        # answer them ourselves, or nfsd could never stop again in this boot
        cld_upcalls | awk -F'\t' '$7=="-"{print $5, $4}' | while read -r x c; do
            case $c in Create) c=0;; Remove) c=1;; GraceDone) c=3;; GraceStart) c=4;; *) c=5;; esac
            rescue_upcall "$x" "$c"
        done
        wait_until 10 cld_quiet && info D4 "the harness answered the orphaned upcall(s) itself (-EREMOTEIO)"
    fi
    n_cr=$(cld_count Create)
    cld_wait Create $((n_cr + 2)) 60 && pass D4 "the restarted daemon serves the traffic (more Creates answered)" || fail D4 "no Creates after the daemon's restart"
    kill "$CHURN" 2>/dev/null; wait "$CHURN" 2>/dev/null
    wait_until 30 sh -c '! pgrep -x mount.nfs4 >/dev/null && ! pgrep -x mount >/dev/null && ! pgrep -x umount >/dev/null'
    mountpoint -q /mnt/churn && umount /mnt/churn
    wait_until 30 cld_quiet
    # the next nfsd start offers exactly the live store
    kmsg D4-next-reboot
    c_nfsd_stop D4
    live=$(store_recs | awk '{print $1}' | sort | tr '\n' ' ')
    nfsd_start_cld D4
    got=$(offered | tr '|' '\n' | while read -r n; do [ -n "$n" ] && hexof "$n" && echo; done | sort | tr '\n' ' ')
    ok D4 "after the kill, GraceStart offers exactly the store's live records (${live:-none})" test "$got" = "$live"
    poke /mnt/v40
    cld_wait GraceDone 5 $((GRACE * 3 + 20)) || fail D4 "no GraceDone after the kill"
    sleep 1
    dump_clients "$OUT/nfsd-clients-c5-after-kill.txt"
    [ -n "$E40" ] && ok D4 "the v4.0 client reclaimed its lock after the daemon's SIGKILL and an nfsd restart" test "$(locks_of "$OUT/nfsd-clients-c5-after-kill.txt" "NFSv4.0" "")" -ge 1
    v40_kept D4 "$OUT/nfsd-clients-c5-after-kill.txt"
    expect_model D4 "the reclaims after the kill"

    # ---------------------------------------------------------------- D5: fallback to the upcall, and back
    kmsg D5-fallback
    _n=$(cld_count Create "$N42")
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/v42 || fail D5 "mount vers=4.2"   # the v4.2 client again (a new record)
    cld_wait Create $((_n + 1)) 30 "$N42" || fail D5 "no Create at the v4.2 mount"
    H42=$(hold_lock /mnt/v42/f42)
    sleep 1
    c_nfsd_stop D5
    kill -TERM "$DPID"
    wait_until 20 sh -c "! kill -0 $DPID 2>/dev/null" && pass D5 "the daemon exited on SIGTERM" || fail D5 "the daemon did not exit on SIGTERM"
    n_i=$(count init)
    t8=$(date +%s)
    _t0=$(now); c_nfsd_start D5; _t1=$(now)
    ok D5 "no daemon: nfsd start took $(grace_secs "$_t0" "$_t1")s and the kernel fell back: \"$(tracker)\"" test "$(tracker)" = "NFSD: Using UMH upcall client tracking operations"
    u=$(last_upcall init)
    ok D5 "init upcall answered by our program ($(fld "$u" 10)), exit $(fld "$u" 9)" test "$(count init)" = $((n_i + 1)) -a "$(fld "$u" 10)" = "$OURS" -a "$(fld "$u" 9)" = 0
    poke /mnt/v42 /mnt/v40
    wait_upcall check 1 60 "$ID42" && ok D5 "the v4.2 client, recorded by the daemon, reclaims through the upcall: check exit $(fld "$(last_upcall check "$ID42")" 9)" \
        test "$(fld "$(last_upcall check "$ID42")" 9)" = 0 || fail D5 "no check upcall for the v4.2 client"
    if [ -n "$E40" ]; then
        wait_upcall check 1 60 "$ID40" && ok D5 "the v4.0 client reclaims through the upcall: check exit $(fld "$(last_upcall check "$ID40")" 9)" \
            test "$(fld "$(last_upcall check "$ID40")" 9)" = 0 || fail D5 "no check upcall for the v4.0 client"
    fi
    wait_upcall gracedone 1 $((GRACE * 3 + 20)) || fail D5 "no gracedone upcall"
    measure_grace D3 "fallback to the upcall: $([ -n "$E40" ] && echo 'v4.0 + v4.2' || echo 'v4.2') reclaiming" "$([ -n "$E40" ] && echo full || echo early)"
    t9=$(date +%s)
    sleep 1
    dump_clients "$OUT/nfsd-clients-c6-fallback.txt"
    ok D5 "locks reclaimed under the upcall" test "$(locks_of "$OUT/nfsd-clients-c6-fallback.txt" "NFSv4.2" "")" -ge 1
    n_bad=$(upcalls | awk -F'\t' '$2 ~ /^D5/ && $9 != 0' | wc -l)
    ok D5 "every upcall answered exit 0 by $OURS ($(upcalls | wc -l) upcalls)" test "$n_bad" = 0
    expect_store D5 "the upcall's reclaims" "$ID42 1 $t8 $t9" ${E40:+"$ID40 0 $t8 *"}
    # back to the daemon
    kmsg D5-back
    c_nfsd_stop D5
    start_daemon D5
    _n=$(cld_count Create "$N42")
    nfsd_start_cld D5
    ok D5 "back on the daemon, GraceStart offers the clients the upcall recorded" sh -c "printf '%s\n' '$(offered)' | tr '|' '\n' | grep -qxF '$N42'"
    poke /mnt/v42 /mnt/v40
    cld_wait Create $((_n + 1)) 60 "$N42" || fail D5 "no Create at the v4.2 RECLAIM_COMPLETE (back on the daemon)"
    cld_wait GraceDone 6 $((GRACE * 3 + 20)) || fail D5 "no GraceDone (back on the daemon)"
    sleep 1
    dump_clients "$OUT/nfsd-clients-c7-back.txt"
    ok D5 "the clients reclaimed their locks under the daemon again" test "$(locks_of "$OUT/nfsd-clients-c7-back.txt" "NFSv4.2" "")" -ge 1
    [ -n "$E40" ] && ok D5 "... the v4.0 client too" test "$(locks_of "$OUT/nfsd-clients-c7-back.txt" "NFSv4.0" "")" -ge 1
    v40_kept D5 "$OUT/nfsd-clients-c7-back.txt"

    # ---------------------------------------------------------------- D2: Remove at unmount and at lease expiry
    kmsg D2-remove
    kill "$H42" "$H40" 2>/dev/null; wait "$H42" "$H40" 2>/dev/null
    n_r42=$(cld_count Remove "$N42")
    umount /mnt/v42 || fail D2 "umount v4.2"
    cld_wait Remove $((n_r42 + 1)) 30 "$N42" && pass D2 "Remove at the v4.2 unmount (DESTROY_CLIENTID)" || fail D2 "no Remove at the v4.2 unmount"
    n_r40=$(cld_count Remove "$N40")
    umount /mnt/v40 || fail D2 "umount v4.0"
    t10=$(date +%s)
    if [ "$V40_CARRIED" = 1 ]; then
        # carried over GraceDone (lib/cld/carry.ts): nfsd destroys it at lease expiry and sends no Remove
        wait_until $((LEASE * 4 + 20)) no_rec "$ID40" && echo "e2e-event: v40-gone $ID40" > $TRACEFS/trace_marker \
            && pass D2 "the carried v4.0 client's record removed by the daemon at its lease expiry ($(( $(date +%s) - t10 ))s after the unmount), with no Remove from the kernel ($(( $(cld_count Remove "$N40") - n_r40 )))" \
            || fail D2 "the carried v4.0 client's record is still there $((LEASE * 4 + 20))s after the unmount"
    elif cld_count Create "$N40" | grep -qv '^0$'; then
        cld_wait Remove $((n_r40 + 1)) $((LEASE * 4 + 20)) "$N40" && pass D2 "Remove for the v4.0 client at lease expiry ($(( $(date +%s) - t10 ))s after the unmount)" \
            || fail D2 "no Remove for the v4.0 client"
    fi
    wait_until 10 cld_quiet
    expect_store D2 "Remove (v4.2 unmount, v4.0 lease expiry)"
    c_nfsd_stop D2
    ok D1 "no usermode-helper upcall while the daemon served: $(upcalls | awk -F'\t' '$2 !~ /^D5-fallback/' | wc -l) outside the fallback" \
        test "$(upcalls | awk -F'\t' '$2 !~ /^D5-fallback/' | wc -l)" = 0
    n_bad=$(cld_upcalls | awk -F'\t' '$8 != 0' | wc -l)
    ok D2 "every cld upcall answered with status 0 ($(cld_upcalls | wc -l) upcalls)" test "$n_bad" = 0
    kill -TERM "$DPID"; wait_until 20 sh -c "! kill -0 $DPID 2>/dev/null" || fail D2 "the daemon did not exit on SIGTERM"
    verify_cli D2

    # ---------------------------------------------------------------- D6: the VM killed, the daemon serving
    # The store is on the virtio-blk disk; a v4.2 and a v4.0 client hold locks,
    # a v4.1 client mounts and unmounts in a loop (the daemon's Creates and
    # Removes in flight); the host kills qemu (SIGKILL); boot d reads the disk.
    # The trace goes to the shared directory as it is made (ktrace-host.log),
    # so the host keeps what the kernel saw up to the kill.
    kmsg D6
    start_daemon D6
    nfsd_start_cld D6
    _n=$(cld_count Create "$N42")
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/v42 || fail D6 "mount vers=4.2"
    cld_wait Create $((_n + 1)) 30 "$N42" || fail D6 "no Create for the v4.2 client"
    H42=$(hold_lock /mnt/v42/f42)
    _n=$(cld_count Create "$N40")
    mount -t nfs4 -o vers=4.0 127.0.0.1:/ /mnt/v40 || fail D6 "mount vers=4.0"
    H40=$(hold_lock /mnt/v40/f40)
    cld_wait Create $((_n + 1)) 30 "$N40" || fail D6 "no Create for the v4.0 client"
    mkdir -p /mnt/v41
    ( while :; do mount -t nfs4 -o vers=4.1 127.0.0.1:/ /mnt/v41 2>/dev/null && { echo $$ > /mnt/v41/churn41; umount /mnt/v41; }; done ) > /dev/null 2>&1 &
    wait_until 60 churn41_started || fail D6 "the v4.1 churn made no cld upcalls"
    N41=$(cld_upcalls | awk -F'\t' '$6 ~ /NFSv4\.1 / {n = $6} END {print n}')
    dump_clients "$OUT/nfsd-clients-c8-before-kill.txt"
    ok D6 "before the kill: the server holds the v4.2 and v4.0 clients' locks, the v4.1 churn is running (\"$N41\")" \
        test "$(locks_of "$OUT/nfsd-clients-c8-before-kill.txt" "NFSv4.2" f42)" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-c8-before-kill.txt" "NFSv4.0" f40)" -ge 1 -a -n "$N41"
    printf 'N42=%s\nN40=%s\nN41=%s\nID42=%s\nID40=%s\nDPID=%s\n' "'$N42'" "'$N40'" "'$N41'" "$ID42" "$ID40" "$DPID" > "$OUT/ids"
    await_kill c-kill
}

# ==================================================================== role d
# D6, after the kill of boot c: the same disk; the records every acknowledged
# Create put there are in the store; the daemon starts on it and the kernel's
# next GraceStart is offered exactly the store's live records.
role_d() {
    GRACE_TSV=$OUT/grace.tsv; : > "$GRACE_TSV"
    PIPEFS=/var/lib/nfs/rpc_pipefs
    kmsg D6-boot
    . "$SHARE/c/ids" 2>/dev/null || { fail D6 "no client ids from boot c"; exit 1; }
    dmesg | grep -E 'EXT4-fs \(vda\)' > "$OUT/ext4.txt"
    grep -q 'recovery complete' "$OUT/ext4.txt" && info D6 "ext4 replayed its journal at mount: boot c did stop uncleanly" \
        || info D6 "ext4 mount: $(tr '\n' ' ' < "$OUT/ext4.txt")"
    recs=$(store_recs 2> "$OUT/parse-errors.txt")
    info D6 "store after the kill: $(echo "$recs" | tr '\n' ';') epochs $(store_epochs) $(cat "$OUT/parse-errors.txt")"
    # what the kernel saw answered before the kill (the trace the host kept)
    awk -f "$HERE/cld.awk" "$SHARE/c/ktrace-host.log" > "$OUT/cld-boot-c.tsv"
    for who in 42 40; do
        eval "_n=\$N$who _id=\$ID$who"
        _last=$(awk -F'\t' -v a="$_n" '$6 == a && $7 != "-" && $8 == 0 && ($4 == "Create" || $4 == "Remove") { l = $4 } END { print l }' "$OUT/cld-boot-c.tsv")
        ok D6 "the v${who%?}.${who#?} client's record, acknowledged ($_last) before the kill, is in the store" \
            test "$_last" = Create -a -n "$(echo "$recs" | awk -v id="$_id" '$1 == id')"
    done
    _h41=$(hexof "$N41")
    _last=$(awk -F'\t' -v a="$N41" '$6 == a && $7 != "-" && $8 == 0 && ($4 == "Create" || $4 == "Remove") { l = $4 } END { print l }' "$OUT/cld-boot-c.tsv")
    _open=$(awk -F'\t' -v a="$N41" '$6 == a && $7 == "-" { l = $4 } END { print l }' "$OUT/cld-boot-c.tsv")
    _has=$(echo "$recs" | awk -v id="$_h41" '$1 == id' | wc -l)
    # the churn client: as its last acknowledged change left it, or as the one in flight at the kill made it
    if { [ "$_last" = Create ] && [ "$_has" = 1 ]; } || { [ "$_last" = Remove ] && [ "$_has" = 0 ]; } || [ -n "$_open" ]; then
        pass D6 "the v4.1 churn client: last acknowledged $_last, ${_open:+$_open in flight at the kill, }record $([ "$_has" = 1 ] && echo present || echo absent)"
    else fail D6 "the v4.1 churn client: last acknowledged $_last, nothing in flight, but its record is $([ "$_has" = 1 ] && echo present || echo absent)"; fi
    install_staged D6
    verify_cli D6
    daemon_cmd D6
    start_nfs_service D6
    start_cld_trace || { fail D6 "no kprobe events on the cld pipe"; exit 1; }
    start_daemon D6
    live=$(store_recs | awk '{print $1}' | sort | tr '\n' ' ')
    nfsd_start_cld D6
    got=$(offered | tr '|' '\n' | while read -r n; do [ -n "$n" ] && hexof "$n" && echo; done | sort | tr '\n' ' ')
    ok D6 "after the kill, the daemon's GraceStart offers exactly the store's live records (${live:-none})" test -n "$live" -a "$got" = "$live"
    c_nfsd_stop D6
    kill -TERM "$DPID"; wait_until 20 sh -c "! kill -0 $DPID 2>/dev/null" || fail D6 "the daemon did not exit on SIGTERM"
    e_scenarios
}

# ==================================================================== role e
# Boot 5, its own disk: switching to our daemon, a container, a v4.0 client
# across two restarts, and the capabilities the programs run with.
#   D10 the upcall, exec'd by the kernel, caught while it waits for the
#       store's lock: no capability in any set; the daemons too (below)
#   D7  a client holds a lock under Debian's nfsdcld; both stop; our daemon,
#       started as installed on an empty store, imports nfsdcld's main.sqlite
#       (both epochs) and the clients reclaim under it; the same from the C
#       nfsdcltrack (its main.sqlite in our storage dir)
#   D8  a v4.0 client holds a lock through two nfsd restarts in a row, opening
#       nothing new: Debian's nfsdcld refuses its second reclaim (a NOTE, the
#       reference's behaviour); ours grants both (the carry-over at GraceDone,
#       lib/cld/carry.ts), and removes the record when nfsd destroys the client
#   D9  a container: a second nfsd in its own network, mount and UTS
#       namespaces (its own nfsd and rpc_pipefs mounts, export, veth address),
#       a client in a third network namespace, a second instance of our
#       installed daemon (-p its pipefs -s its store): the kernel uses cld
#       there and not the upcall, the client reclaims after that nfsd
#       restarts, and each store holds only its own clients
REFCLD=/usr/sbin/nfsdcld           # Debian's nfsdcld (nfs-kernel-server), default storage dir:
REFCLD_DIR=/var/lib/nfs/nfsdcld
CAPS_RE='^Cap(Inh|Prm|Eff|Bnd|Amb):'
# check_caps TAG WHAT STATUS-FILE: every capability set in a saved /proc/PID/status is empty
check_caps() {
    _c=$(grep -E "$CAPS_RE" "$3" | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), substr($1, 1, length($1) - 1), $2}')
    ok "$1" "$2 runs with no capability: $_c" \
        awk -v re="$CAPS_RE" '$0 ~ re { n++; if ($2 !~ /^0+$/) bad = 1 } END { exit !(n == 5 && !bad) }' "$3"
}
# check_daemon_caps TAG WHAT STATUS-FILE: our daemon holds CAP_DAC_READ_SEARCH (bit 2) alone, in its own
# permitted, effective and bounding sets (nfsd's clients/ is 0600: lib/cld/carry.ts), none inheritable or ambient
check_daemon_caps() {
    _c=$(grep -E "$CAPS_RE" "$3" | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), substr($1, 1, length($1) - 1), $2}')
    ok "$1" "$2 holds CAP_DAC_READ_SEARCH alone: $_c" \
        awk -v re="$CAPS_RE" '$0 ~ re { n++; want = ($1 ~ /Inh|Amb/) ? "0000000000000000" : "0000000000000004"; if ($2 != want) bad = 1 } END { exit !(n == 5 && !bad) }' "$3"
}
# status_of PID NAME: a copy of /proc/PID/status in $OUT/status-NAME.txt (prints the file)
status_of() { cp "/proc/$1/status" "$OUT/status-$2.txt" 2>/dev/null; tr '\0' ' ' < "/proc/$1/cmdline" > "$OUT/cmdline-$2.txt" 2>/dev/null; echo "$OUT/status-$2.txt"; }
is_js() { case "$(readlink "/proc/$1/exe" 2>/dev/null)" in *node*|*bun*) return 0;; esac; return 1; }
# find_upcall CMD: our program running CMD for the kernel, once the launcher has
# exec'd the runtime (env and setpriv exec in place: same pid); sets UPID
find_upcall() {
    for UPID in $(pgrep -f -- "$OURS $1"); do is_js "$UPID" && return 0; done
    return 1
}
# note TAG TEXT: what a reference program did, for the summary (neither a pass nor a failure of ours)
note() { say "NOTE[$1]: $2"; echo "NOTE[$1]: $2" >> "$OUT/result.txt"; }
lock_seen() { dump_clients /run/clients-now.txt; [ "$(locks_of /run/clients-now.txt "$1" "$2")" -ge 1 ]; }
mounted_nfs() { awk '$3 ~ /^nfs4?$/ {print $2}' /proc/mounts; }
# e_restart TAG LABEL [WHO]: nfsd stopped and started with a cld daemon serving
# (DPID), the clients poked into reclaiming, the GraceDone; the server's
# clients afterwards in $CL; the GraceStart's clients in $OFFERED
e_restart() {
    _g=$(cld_count GraceDone)
    c_nfsd_stop "$1"
    nfsd_start_cld "$1" "${3-}"
    OFFERED=$(offered)
    poke $(mounted_nfs)
    cld_wait GraceDone $((_g + 1)) $((GRACE * 3 + 20)) || fail "$1" "no GraceDone ($2)"
    sleep 1
    CL=$OUT/nfsd-clients-$(echo "$2" | tr -c 'A-Za-z0-9\n' - | cut -c1-40).txt
    dump_clients "$CL"
}
# import_logged TAG FILE: our daemon's syslog says it imported FILE at its first start
# (The daemon logs through /usr/bin/logger, killed after 1 s: under a heavy
# emulation load its first lines can be lost, the "serving" line with them;
# the store's content, checked next, proves the import then.)
import_logged() {
    if wait_until 20 grep -q "nfsdcld\[$DPID\]: .*imported [0-9]* client record(s) from $2" "$OUT/syslog.txt"; then
        pass "$1" "our daemon's first start imported $2: \"$(grep "nfsdcld\[$DPID\]: .*imported" "$OUT/syslog.txt" | tail -1 | sed 's/.*\]: //')\""
    elif ! grep -q "nfsdcld\[$DPID\]: serving " "$OUT/syslog.txt"; then
        info "$1" "our daemon's log lost its first lines, the import's and the \"serving\" one (logger's 1 s bound under this load): first line kept \"$(grep "nfsdcld\[$DPID\]" "$OUT/syslog.txt" | head -1 | sed 's/.*\]: //')\""
    else fail "$1" "no import of $2 in our daemon's log: $(grep "nfsdcld\[$DPID\]" "$OUT/syslog.txt" | head -3 | tr '\n' ' ')"; fi
}
daemon_stop() {  # TAG
    kill -TERM "$DPID"; wait_until 20 sh -c "! kill -0 $DPID 2>/dev/null" || fail "$1" "daemon $DPID did not exit on SIGTERM"
}

e_upcall_caps() {
    kmsg D10-upcall
    _n=$(count init)
    c_nfsd_start D10
    ok D10 "no daemon: the kernel uses the upcall (\"$(tracker)\"), our installed program ($(fld "$(last_upcall init)" 10)): init exit $(fld "$(last_upcall init)" 9)" \
        test "$(tracker)" = "NFSD: Using UMH upcall client tracking operations" -a "$(count init)" = $((_n + 1)) -a "$(fld "$(last_upcall init)" 10)" = "$OURS" -a "$(fld "$(last_upcall init)" 9)" = 0
    # The store's writers' lock (lib/store/lock.ts: the directory clients.lock),
    # held as another node would hold it (no owner file, mtime kept fresh):
    # the next create upcall waits for it, running, long enough to be read.
    mkdir "$STORE/clients.lock" || fail D10 "cannot take the store's lock"
    ( for _i in $(seq 60); do touch "$STORE/clients.lock"; sleep 0.5; done ) & _keep=$!
    _n=$(count create)
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/v42 & _m=$!
    if wait_until 30 find_upcall create; then
        _st=$(status_of "$UPID" upcall)
        _pp=$(awk '/^PPid:/{print $2}' "$_st")
        info D10 "caught the create upcall running (pid $UPID, $(readlink "/proc/$UPID/exe"), parent $_pp [$(cat "/proc/$_pp/comm" 2>/dev/null)]): $(cut -c1-160 "$OUT/cmdline-upcall.txt")"
        check_caps D10 "the create upcall, as the kernel ran it," "$_st"
    else fail D10 "no create upcall of $OURS seen running while the store's lock was held: $(upcalls | tail -2 | tr '\n' ' ')"; fi
    kill "$_keep"; wait "$_keep" 2>/dev/null; rmdir "$STORE/clients.lock"
    wait "$_m" || fail D10 "mount vers=4.2"
    wait_upcall create $((_n + 1)) 30 && ok D10 "once the lock was free the upcall went on: create exit $(fld "$(last_upcall create)" 9)" \
        test "$(fld "$(last_upcall create)" 9)" = 0 || fail D10 "the create upcall did not return"
    _id=$(hexof "$(cname 4.2)")
    ok D10 "... and the client's record is in the store" test -n "$(rec "$_id")"
    _n=$(count remove)
    umount /mnt/v42 || fail D10 "umount v4.2"
    wait_upcall remove $((_n + 1)) 30 && ok D10 "remove at the unmount, exit $(fld "$(last_upcall remove)" 9)" test "$(fld "$(last_upcall remove)" 9)" = 0 \
        || fail D10 "no remove upcall at the unmount"
    c_nfsd_stop D10
    rm -rf "$STORE"     # the switches start from an empty store
}

# D7 (from nfsdcld) and D8 (with nfsdcld, then with ours)
e_from_nfsdcld() {
    kmsg D7-nfsdcld
    ( cd / && exec timeout 30 "$REFCLD" ) > "$OUT/nfsdcld-start.txt" 2>&1 || fail D7 "Debian's nfsdcld did not start: $(head -c 300 "$OUT/nfsdcld-start.txt")"
    wait_until 10 sh -c "pgrep -f '^$REFCLD' >/dev/null"
    DPID=$(pgrep -f "^$REFCLD" | head -1)
    info D7 "Debian's nfsdcld ($REFCLD, pid $DPID) serves, storage dir $REFCLD_DIR"
    nfsd_start_cld D7 "Debian's nfsdcld"
    mount -t nfs4 -o vers=4.2 127.0.0.1:/ /mnt/v42 || fail D7 "mount vers=4.2"
    N42=$(cname 4.2); ID42=$(hexof "$N42")
    echo x > /mnt/v42/f42; H42=$(hold_lock /mnt/v42/f42)
    mount -t nfs4 -o vers=4.0 127.0.0.1:/ /mnt/v40 || fail D7 "mount vers=4.0"
    N40=$(cname 4.0); ID40=$(hexof "$N40")
    echo y > /mnt/v40/f40; H40=$(hold_lock /mnt/v40/f40)
    cld_wait Create 1 30 "$N42" && cld_wait Create 1 30 "$N40" \
        && pass D7 "under nfsdcld: Create for the v4.2 client (RECLAIM_COMPLETE) and the v4.0 client (OPEN_CONFIRM), both hold a lock" \
        || fail D7 "under nfsdcld: no Create for the v4.2 or the v4.0 client"

    # ------------------------------------------------ D8 with nfsdcld: the reference's behaviour
    kmsg D8-nfsdcld
    for _i in 1 2; do
        e_restart D8 "nfsdcld restart $_i" "Debian's nfsdcld"
        _l=$(locks_of "$CL" "NFSv4.0" f40)
        D8_REF="$(is_offered "$N40" && echo offered || echo "not offered") $_l"
        note D8 "Debian's nfsdcld, restart $_i of 2 (the v4.0 client opens nothing new): GraceStart $(is_offered "$N40" && echo offered || echo "did not offer") the v4.0 client, which then holds $_l lock(s) on f40$([ "$_l" = 0 ] && echo ': its reclaim was refused, its lock lost (nfsdcld dropped the record at the GraceDone before: no Create comes for a v4.0 reclaim)')"
    done
    # the v4.0 client lost f40: a lock of a new open owner (OPEN_CONFIRM: recorded again) for the switch
    kill "$H40" 2>/dev/null; wait "$H40" 2>/dev/null
    H40=$(setpriv --reuid=60001 --regid=60001 --clear-groups sh -c 'exec 9<>/mnt/v40/f40b; flock 9 && exec sleep 100000' >/dev/null 2>&1 & echo $!)
    wait_until 30 lock_seen NFSv4.0 f40b
    dump_clients "$OUT/nfsd-clients-e-before-switch.txt"
    ok D7 "before the switch: the v4.2 client holds f42, the v4.0 client f40b" \
        test "$(locks_of "$OUT/nfsd-clients-e-before-switch.txt" "NFSv4.2" f42)" -ge 1 -a "$(locks_of "$OUT/nfsd-clients-e-before-switch.txt" "NFSv4.0" f40b)" -ge 1

    # ------------------------------------------------ D7: nfsdcld -> ours
    kmsg D7-switch-nfsdcld
    c_nfsd_stop D7
    kill -TERM "$DPID"; wait_until 20 sh -c "! kill -0 $DPID 2>/dev/null" || fail D7 "nfsdcld did not exit on SIGTERM"
    cp -a "$REFCLD_DIR" "$OUT/nfsdcld-storagedir" 2>/dev/null
    ok D7 "our store is empty (no snapshot, no journal) and nfsdcld's main.sqlite is in $REFCLD_DIR" \
        test ! -e "$STORE/clients.snap" -a ! -e "$STORE/clients.journal" -a -s "$REFCLD_DIR/main.sqlite"
    start_daemon D7
    check_daemon_caps D10 "our daemon (pid $DPID, started as its unit starts it)" "$(status_of "$DPID" daemon)"
    import_logged D7 "$REFCLD_DIR/main.sqlite"
    ok D7 "the store holds both clients' records after the import (epochs $(store_epochs))" test -n "$(rec "$ID42")" -a -n "$(rec "$ID40")"
    e_restart D7 "switch from nfsdcld"
    ok D7 "nfsdcld -> ours: GraceStart offered both clients (\"$OFFERED\")" sh -c "is() { printf '%s\n' '$OFFERED' | tr '|' '\n' | grep -qxF \"\$1\"; }; is '$N42' && is '$N40'"
    ok D7 "nfsdcld -> ours: both clients reclaimed their locks (v4.2 f42, v4.0 f40b)" \
        test "$(locks_of "$CL" "NFSv4.2" f42)" -ge 1 -a "$(locks_of "$CL" "NFSv4.0" f40b)" -ge 1
    cld_measure_grace D7 "switch from nfsdcld, v4.2 and v4.0 reclaiming" full

    # ------------------------------------------------ D8 with ours: the switch's restart and the next
    # No Create comes for a v4.0 reclaim under cld v2; at GraceDone our daemon
    # reads nfsd's client list (with CAP_DAC_READ_SEARCH: clients/ is 0600)
    # and carries the v4.0 clients holding reclaimed state into the current
    # epoch (lib/cld/carry.ts), where nfsdcld drops them. Then nfsd destroys
    # the client (ctl "expire", as at a lease expiry): no Remove comes from
    # the kernel for a client it never marked stable, and the daemon removes
    # the record itself.
    kmsg D8-ours
    c40=$(cld_count Create "$N40")
    ok D8 "ours, restart 1 of 2, the switch (the v4.0 client opens nothing new): GraceStart offered the v4.0 client and it reclaimed its lock" \
        test "$(locks_of "$CL" "NFSv4.0" f40b)" -ge 1 -a -n "$(is_offered "$N40" && echo y)"
    ok D8 "ours, after restart 1's GraceDone: the v4.0 client is still recorded (carried; nfsdcld drops it)" test -n "$(rec "$ID40")"
    e_restart D8 "ours restart 2"
    _l=$(locks_of "$CL" "NFSv4.0" f40b)
    _o=$(is_offered "$N40" && echo offered || echo "not offered")
    ok D8 "ours, restart 2 of 2: the v4.0 client is $_o and holds $_l lock(s) (Debian's nfsdcld, restart 2: $D8_REF)" test "$_o" = offered -a "$_l" -ge 1
    ok D8 "ours: the v4.0 client reclaimed twice with no Create ($(( $(cld_count Create "$N40") - c40 ))): the carry-over, not a new open, kept it" test "$(cld_count Create "$N40")" = "$c40"
    echo "NOTE[D8]: a v4.0 client through two restarts: Debian's nfsdcld, restart 2: $D8_REF; ours: $_o, $_l lock(s)" >> "$OUT/result.txt"
    # nfsd destroys the client: its record goes, with no Remove from the kernel
    _ctl=$(grep -l "^name: \"$N40\"" /proc/fs/nfsd/clients/*/info 2>/dev/null | head -1)
    _r=$(cld_count Remove "$N40")
    if [ -n "$_ctl" ] && [ "$(cld_count Create "$N40")" = "$c40" ]; then
        echo expire > "${_ctl%/info}/ctl"
        wait_until 20 no_rec "$ID40" \
            && pass D8 "nfsd destroyed the carried v4.0 client (ctl expire): the daemon removed its record ($(( $(cld_count Remove "$N40") - _r )) Remove upcalls from the kernel)" \
            || fail D8 "nfsd destroyed the carried v4.0 client (ctl expire), but its record is still in the store"
        # the client recovers with a new open (OPEN_CONFIRM: a Create) for the lock holder's next use; not checked
    else
        fail D8 "the v4.0 client is not in /proc/fs/nfsd/clients or made a Create: cannot test its expiry"
    fi
    ok D8 "the v4.2 client reclaimed too" test "$(locks_of "$CL" "NFSv4.2" f42)" -ge 1
}

# D7: the C nfsdcltrack -> ours
e_from_nfsdcltrack() {
    kmsg D7-nfsdcltrack
    kill "$H42" "$H40" 2>/dev/null; wait "$H42" "$H40" 2>/dev/null
    umount /mnt/v42 /mnt/v40 || fail D7 "umount"
    c_nfsd_stop D7
    daemon_stop D7
    # a machine that only ever ran the C program: our import takes an nfsdcld database first
    mv "$REFCLD_DIR" "$REFCLD_DIR.was"
    rm -rf "$STORE"
    set_prog "$REF" || fail D7 "cltrack_prog=$REF"
    _n=$(count init)
    c_nfsd_start D7
    ok D7 "no daemon: the C nfsdcltrack serves the upcall (\"$(tracker)\", init by $(fld "$(last_upcall init)" 10) exit $(fld "$(last_upcall init)" 9))" \
        test "$(tracker)" = "NFSD: Using UMH upcall client tracking operations" -a "$(count init)" = $((_n + 1)) -a "$(fld "$(last_upcall init)" 10)" = "$REF"
    mkdir -p /mnt/v41
    mount -t nfs4 -o vers=4.1 127.0.0.1:/ /mnt/v41 || fail D7 "mount vers=4.1"
    N41=$(cname 4.1); ID41=$(hexof "$N41")
    wait_upcall create 1 30 "$ID41" && ok D7 "under the C nfsdcltrack: create for the v4.1 client, exit $(fld "$(last_upcall create "$ID41")" 9)" \
        test "$(fld "$(last_upcall create "$ID41")" 9)" = 0 -a "$(fld "$(last_upcall create "$ID41")" 10)" = "$REF" || fail D7 "no create upcall for the v4.1 client"
    echo z > /mnt/v41/f41; H41=$(hold_lock /mnt/v41/f41)
    sleep 2
    c_nfsd_stop D7
    ok D7 "the C program's main.sqlite is in our storage dir, none of our files" \
        test -s "$STORE/main.sqlite" -a ! -e "$STORE/clients.snap" -a ! -e "$STORE/clients.journal"
    set_prog "$OURS"
    start_daemon D7
    import_logged D7 "$STORE/main.sqlite"
    ok D7 "the store holds the v4.1 client's record after the import" test -n "$(rec "$ID41")"
    e_restart D7 "switch from nfsdcltrack"
    ok D7 "nfsdcltrack -> ours: GraceStart offered the v4.1 client (\"$OFFERED\") and it reclaimed its lock" \
        test "$OFFERED" = "$N41" -a "$(locks_of "$CL" "NFSv4.1" f41)" -ge 1
    cld_measure_grace D7 "switch from nfsdcltrack, v4.1 reclaiming" early
}

# D9: the container
NS2=/var/lib/nfs/ns2                 # the container's /var/lib/nfs (on the disk)
NS2_STORE=/var/lib/nfs/ns2-cld       # the container daemon's -s (inside: $NS2/ns2-cld here)
NS2_PIPEFS=/run/ns2-pipefs           # the container's rpc_pipefs (mounted in its mount namespace only)
NS2_NET=10.99.0
ns2() { nsenter -t "$CPID" -m -n -u -- "$@"; }
ns2_clients() { ns2 sh -c 'for c in /proc/fs/nfsd/clients/*; do [ -d "$c" ] || continue; echo "== $c"; cat "$c/info"; echo "-- states"; cat "$c/states"; done' > "$1" 2>&1; }
ns2_recs() {
    _s=$NS2/ns2-cld/clients.snap; _j=$NS2/ns2-cld/clients.journal
    [ -f "$_s" ] || _s=/dev/null; [ -f "$_j" ] || _j=/dev/null
    awk -f "$HERE/store.awk" "$_s" "$_j"
}
in_ns2() { [ "$(readlink "/proc/$1/ns/net")" = "$(readlink "/proc/$CPID/ns/net")" ]; }
e_container() {
    kmsg D9-container
    modprobe veth || fail D9 "modprobe veth"
    mkdir -p "$NS2/export" "$NS2/rpc_pipefs" "$NS2_PIPEFS" && chmod 1777 "$NS2/export"
    : > "$NS2/etab"; : > "$NS2/rmtab"
    echo "/var/lib/nfs/export $NS2_NET.0/24(rw,sync,no_root_squash,insecure,no_subtree_check,fsid=0)" > /run/ns2-exports
    rm -f /run/ns2-ready
    unshare --mount --net --uts --propagation private sh -c "
        hostname e2e-ns2 && mount --bind $NS2 /var/lib/nfs && mount --bind /run/ns2-exports /etc/exports \
        && mount -t nfsd nfsd /proc/fs/nfsd && mount -t rpc_pipefs rpc_pipefs $NS2_PIPEFS && ip link set lo up \
        && touch /run/ns2-ready && exec sleep 100000" > "$OUT/ns2-init.txt" 2>&1 &
    CPID=$!
    wait_until 20 test -e /run/ns2-ready || { fail D9 "the container did not come up: $(cat "$OUT/ns2-init.txt")"; return; }
    ip netns add ns3 && ip link add e2e-ns2 type veth peer name e2e-ns3 && ip link set e2e-ns2 netns "$CPID" && ip link set e2e-ns3 netns ns3 \
        && ns2 ip addr add $NS2_NET.1/24 dev e2e-ns2 && ns2 ip link set e2e-ns2 up \
        && ip -n ns3 addr add $NS2_NET.2/24 dev e2e-ns3 && ip -n ns3 link set e2e-ns3 up && ip -n ns3 link set lo up \
        || { fail D9 "veth between the container and the client's namespace"; return; }
    ns2 sh -c "echo $LEASE > /proc/fs/nfsd/nfsv4leasetime && echo $GRACE > /proc/fs/nfsd/nfsv4gracetime && exportfs -ra && rpc.mountd -N 2 -N 3" \
        > "$OUT/ns2-nfs.txt" 2>&1 || fail D9 "the container's export and rpc.mountd: $(cat "$OUT/ns2-nfs.txt")"
    pass D9 "container up: network, mount and UTS namespaces of its own ($(readlink /proc/$CPID/ns/net)), its own nfsd and rpc_pipefs mounts, export on $NS2_NET.1 over a veth"

    # no daemon in the container: what the kernel does there
    _d0=$(dmesg | wc -l); _u0=$(upcalls | wc -l)
    timeout 60 nsenter -t "$CPID" -m -n -u -- rpc.nfsd -N 3 8 || fail D9 "the container's rpc.nfsd"
    dmesg | tail -n +$((_d0 + 1)) > "$OUT/ns2-dmesg-no-daemon.txt"
    _u1=$(upcalls | wc -l)
    ok D9 "no daemon in the container: the kernel does not try the upcall there (\"$(grep -o 'NFSD: attempt to initialize umh client tracking in a container ignored' "$OUT/ns2-dmesg-no-daemon.txt")\"), no upcall made ($_u0 -> $_u1)" \
        sh -c "grep -q 'umh client tracking in a container ignored' '$OUT/ns2-dmesg-no-daemon.txt' && test $_u0 = $_u1"
    info D9 "the kernel, no daemon in the container: $(grep -o 'NFSD: .*' "$OUT/ns2-dmesg-no-daemon.txt" | tr '\n' ' ')"
    timeout 60 nsenter -t "$CPID" -m -n -u -- rpc.nfsd 0 || fail D9 "the container's rpc.nfsd 0"

    # the second instance of our daemon, as installed, with its own pipefs and store
    ( cd / && exec timeout 120 nsenter -t "$CPID" -m -n -u -- $DCMD -p "$NS2_PIPEFS" -s "$NS2_STORE" ) > "$OUT/ns2-daemon-start.txt" 2>&1 \
        || fail D9 "the container's daemon ($DCMD -p $NS2_PIPEFS -s $NS2_STORE): $(head -c 300 "$OUT/ns2-daemon-start.txt")"
    N2PID=
    for _p in $(pgrep -f -- "$DBIN"); do is_js "$_p" && in_ns2 "$_p" && N2PID=$_p; done
    ok D9 "a second instance of our daemon serves the container: $DCMD -p $NS2_PIPEFS -s $NS2_STORE (pid ${N2PID:-none})" test -n "$N2PID"
    [ -n "$N2PID" ] && check_daemon_caps D10 "the container's daemon (pid $N2PID)" "$(status_of "$N2PID" daemon-ns2)"
    _u=$(n_using nfsdcld); _g=$(cld_count GraceStart)
    timeout 60 nsenter -t "$CPID" -m -n -u -- rpc.nfsd -N 3 8 || fail D9 "the container's rpc.nfsd"
    ok D9 "the container's nfsd uses the daemon (\"$(tracker)\"), GraceStart answered, the container's daemon holds its pipe $NS2_PIPEFS/nfsd/cld" \
        sh -c "test '$(n_using nfsdcld)' = $((_u + 1)) -a '$(cld_count GraceStart)' = $((_g + 1)) && ls -l /proc/$N2PID/fd | grep -q ' -> $NS2_PIPEFS/nfsd/cld\$'"
    ok D9 "... and our host daemon does not (it holds $PIPEFS/nfsd/cld only)" sh -c "! ls -l /proc/$DPID/fd | grep -q ' -> $NS2_PIPEFS'"

    # its client, in a third network namespace (and a UTS namespace: a client name of its own)
    mkdir -p /mnt/ns2c
    nsenter --net=/run/netns/ns3 unshare --uts sh -c "hostname e2e-ns2-client && exec mount -t nfs4 -o vers=4.2 $NS2_NET.1:/ /mnt/ns2c" \
        > "$OUT/ns2-mount.txt" 2>&1 || fail D9 "mount of the container's export from the third namespace: $(cat "$OUT/ns2-mount.txt")"
    ns2_clients "$OUT/nfsd-clients-ns2-1.txt"
    NC=$(sed -n 's/^name: "\(.*\)"$/\1/p' "$OUT/nfsd-clients-ns2-1.txt" | head -1)
    cld_wait Create 1 30 "$NC" && pass D9 "the container's client \"$NC\" (address $(sed -n 's/^address: //p' "$OUT/nfsd-clients-ns2-1.txt" | head -1)): Create" \
        || fail D9 "no Create for the container's client \"$NC\""
    echo c > /mnt/ns2c/fc; HC=$(hold_lock /mnt/ns2c/fc)
    sleep 2

    # the container's nfsd restarts: its client reclaims
    kmsg D9-restart
    _g=$(cld_count GraceDone)
    timeout 60 nsenter -t "$CPID" -m -n -u -- rpc.nfsd 0 || fail D9 "the container's rpc.nfsd 0"
    timeout 60 nsenter -t "$CPID" -m -n -u -- rpc.nfsd -N 3 8 || fail D9 "the container's rpc.nfsd"
    _off=$(offered)
    poke /mnt/ns2c
    cld_wait GraceDone $((_g + 1)) $((GRACE * 3 + 20)) || fail D9 "no GraceDone in the container"
    sleep 1
    ns2_clients "$OUT/nfsd-clients-ns2-2.txt"
    ok D9 "the container's nfsd restarted: GraceStart offered its client (\"$_off\"), which reclaimed its lock" \
        test "$_off" = "$NC" -a "$(locks_of "$OUT/nfsd-clients-ns2-2.txt" "$NC" fc)" -ge 1
    cld_measure_grace D9 "container's nfsd restart, one v4.2 client reclaiming" early
    _hc=$(hexof "$NC")
    ok D9 "the container's store ($NS2_STORE) holds its own client only: $(ns2_recs | awk '{print $1}' | tr '\n' ' ')" test "$(ns2_recs | awk '{print $1}')" = "$_hc"
    ok D9 "the host's store holds its own client (\"$N41\") and none of the container's" test -n "$(rec "$ID41")" -a -z "$(rec "$_hc")"

    # the container goes away
    kill "$HC" 2>/dev/null; wait "$HC" 2>/dev/null
    _r=$(cld_count Remove "$NC")
    umount /mnt/ns2c || fail D9 "umount of the container's export"
    cld_wait Remove $((_r + 1)) 30 "$NC" && pass D9 "Remove at the container client's unmount" || fail D9 "no Remove at the container client's unmount"
    ok D9 "... and the container's store is empty again, the host's unchanged" test -z "$(ns2_recs)" -a -n "$(rec "$ID41")"
    timeout 60 nsenter -t "$CPID" -m -n -u -- rpc.nfsd 0
    kill -TERM "$N2PID"; wait_until 20 sh -c "! kill -0 $N2PID 2>/dev/null" || fail D9 "the container's daemon did not exit on SIGTERM"
    for _p in $(pgrep -x rpc.mountd); do in_ns2 "$_p" && kill "$_p"; done
    kill "$CPID"; ip netns del ns3
}

# D7-D10 after D6 in boot 4 (nfsd stopped, no daemon: its setup serves), or alone in boot 5 (E2E_BOOTS=e)
role_e() {
    kmsg E-install
    cld_setup setup
    e_scenarios
}
e_scenarios() {
    mkdir -p /mnt/v42 /mnt/v40
    e_upcall_caps
    e_from_nfsdcld
    e_from_nfsdcltrack
    e_container
    kmsg E-end
    kill "$H41" 2>/dev/null; wait "$H41" 2>/dev/null
    umount /mnt/v41
    c_nfsd_stop D7
    daemon_stop D7
    ok D7 "no cld upcall was answered with an error ($(cld_upcalls | wc -l) upcalls)" test "$(cld_upcalls | awk -F'\t' '$4 != "event" && $8 != 0 && $8 != "-"' | wc -l)" = 0
    verify_cli D7
}

case "$ROLE" in
    a) role_a;;
    b) role_b;;
    c) role_c;;
    d) role_d;;
    e) role_e;;
    *) fail setup "unknown role $ROLE";;
esac
exit 0
