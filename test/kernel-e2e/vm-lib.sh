# Shared helpers of the VM-side scripts (vm-server.sh, vm-client.sh); sourced
# by them, inside the VM, as PID 1.  Everything is driven by e2e.* parameters
# on the kernel command line (set by run-all.sh).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export LC_ALL=C
umask 022

param() { sed -n "s/.*[[:space:]]e2e\.$1=\([^[:space:]]*\).*/\1/p" /proc/cmdline; }
ROLE=$(param role)            # a (server, first boot) | b (server, after the crash) | client
SHARE=$(param share)          # host directory shared read-write with every VM
WORK=$(param work)            # cache: kroot (kernel + modules), stage (nfs-utils)
REPO=$(param repo)            # the project checkout (read-only, through the host's /)
HERE=$(dirname "$(param test)")
LEASE=$(param lease); LEASE=${LEASE:-10}
OUT=$SHARE/$ROLE
MARK=$SHARE/markers
KVER=$(uname -r)

now() { cut -d' ' -f1 /proc/uptime; }
say() { echo "[vm-$ROLE $(now)] $*"; }
FAILS=0
# result lines: PASS[S1]: text / FAIL[S1]: text / INFO[S1]: text
pass() { say "PASS[$1]: $2"; echo "PASS[$1]: $2" >> "$OUT/result.txt"; }
fail() { say "FAIL[$1]: $2"; echo "FAIL[$1]: $2" >> "$OUT/result.txt"; FAILS=$((FAILS + 1)); }
info() { say "INFO[$1]: $2"; echo "INFO[$1]: $2" >> "$OUT/result.txt"; }
# ok TAG TEXT COMMAND...: PASS when the command succeeds, FAIL otherwise
ok() { _t=$1 _d=$2; shift 2; if "$@"; then pass "$_t" "$_d"; else fail "$_t" "$_d"; fi; }

# phase marks in the kernel log, for upcalls.awk
kmsg() {
    echo "e2e-phase: $1" > /dev/kmsg
    [ -w /sys/kernel/tracing/trace_marker ] && echo "e2e-phase: $1" > /sys/kernel/tracing/trace_marker
    say "phase $1"
}
# markers: files in the shared directory, seen by the host and the other VM
marker() { echo "$(date +%s.%N) $*" > "$MARK/.$1.tmp" && mv "$MARK/.$1.tmp" "$MARK/$1"; }
wait_marker() {  # NAME TIMEOUT_S [POLL_S]
    _end=$(( $(date +%s) + $2 ))
    while [ ! -e "$MARK/$1" ]; do
        [ "$(date +%s)" -ge "$_end" ] && return 1
        sleep "${3:-0.3}"
    done
}
power_off() {
    sync
    say "E2E-VM-DONE"
    echo o > /proc/sysrq-trigger     # power off -> qemu exits
    /run/busybox sleep 30            # PID 1 must not exit first (that panics the kernel)
}
# wait_until TIMEOUT_S COMMAND...: poll every 0.2 s
wait_until() {
    _end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -ge "$_end" ] && return 1
        sleep 0.2
    done
}

base_setup() {
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
    mkdir -p "$SHARE" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 e2eout "$SHARE" \
        || { echo "E2E-FATAL: cannot mount the shared directory"; exit 1; }
    [ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd     # as on any normal system (bash process substitution)
    cp /bin/busybox /run/busybox                      # still there when the 9p root goes away at power-off
    mkdir -p "$OUT" "$MARK"
    echo "$(now)" > "$OUT/vm-started"
    say "E2E-VM-START role=$ROLE kernel=$KVER"
    /bin/busybox ip link set lo up
    mkdir -p /lib/modules && ln -sfn "$WORK/kroot/lib/modules/$KVER" "/lib/modules/$KVER"
}
# the nfs-utils userland (rpc.nfsd, rpc.mountd, exportfs, mount.nfs, and the C nfsdcltrack)
install_nfs_utils() { cp -a "$WORK/stage/." / || fail setup "copy nfs-utils"; }

net_up() {  # ADDRESS/PREFIX
    modprobe virtio_net || { fail setup "modprobe virtio_net"; return 1; }
    wait_until 10 test -e /sys/class/net/eth0 || { fail setup "no eth0"; return 1; }
    /bin/busybox ip link set eth0 up
    /bin/busybox ip addr add "$1" dev eth0
}

# ------------------------------------------------------------------ upcalls
# The kernel's own record of every upcall (see upcalls.awk): one line per upcall
#   n phase start cmd arg env0 env1 end rc prog overlap
# start_umh_log: follow the kernel log into /run/umh.log (the lines upcalls.awk and
# grace_window need), so polling reads a small tmpfs file instead of the whole ring
UMHLOG=/run/umh.log
start_umh_log() {
    : > "$UMHLOG"
    dmesg -w | grep --line-buffered -E 'nfsd4_umh_cltrack_upcall|e2e-phase: |NFSD: starting [0-9]+-second grace' >> "$UMHLOG" &
}
# start_umh_trace: kprobe events on call_usermodehelper() (entry: path, argv, envp;
# return: the wait status), read from trace_pipe into /run/umh-trace.log.
# Entry and return carry the calling task, so each upcall's exit status is
# paired exactly even when upcalls overlap (the dprintk's "return value" line
# does not say which upcall it ends).  Without kprobe events, upcalls() falls
# back to the dprintk (upcalls.awk).
TRACEFS=/sys/kernel/tracing
KTRACE=/run/umh-trace.log
start_umh_trace() {
    mountpoint -q $TRACEFS || mount -t tracefs nodev $TRACEFS 2>/dev/null || return 1
    echo 'p:e2e/umh_call call_usermodehelper path=+0(%di):string cmd=+0(+8(%si)):string arg=+0(+16(%si)):string e0=+0(+0(%dx)):string e1=+0(+8(%dx)):string' >> $TRACEFS/kprobe_events 2>/dev/null || return 1
    echo 'r:e2e/umh_ret call_usermodehelper ret=$retval:s32' >> $TRACEFS/kprobe_events 2>/dev/null || return 1
    echo 4096 > $TRACEFS/saved_cmdlines_size 2>/dev/null     # keep task names longer (cosmetic)
    echo 1 > $TRACEFS/events/e2e/enable && echo 1 > $TRACEFS/tracing_on || return 1
    : > "$KTRACE"
    if [ "$ROLE" = c ]; then
        # also into the shared directory as it comes (9p writes reach the host at once):
        # the host keeps what the kernel saw up to the kill of D6
        cat $TRACEFS/trace_pipe | tee -a "$OUT/ktrace-host.log" >> "$KTRACE" &
    else
        cat $TRACEFS/trace_pipe >> "$KTRACE" &
    fi
    touch /run/umh-trace.ok
}
upcalls() {
    if [ -e /run/umh-trace.ok ]; then awk -f "$HERE/ktrace.awk" "$KTRACE"
    else awk -f "$HERE/upcalls.awk" "$UMHLOG"; fi
}
# count CMD [ARG]: upcalls of CMD (for client ARG) started so far
count() { upcalls | awk -F'\t' -v c="$1" -v a="${2-}" '$4==c && (a=="" || $5==a){n++} END{print n+0}'; }
# every upcall started so far has returned
quiet_upcalls() { upcalls | awk -F'\t' '$8=="-"{busy=1} END{exit busy}'; }
# wait_upcall CMD N TIMEOUT [ARG]: N upcalls of CMD (for ARG) have been made, and none is running
wait_upcall() {
    _end=$(( $(date +%s) + $3 ))
    while :; do
        if [ "$(count "$1" "${4-}")" -ge "$2" ] && quiet_upcalls; then return 0; fi
        [ "$(date +%s)" -ge "$_end" ] && return 1
        sleep 0.2
    done
}
# last_upcall CMD [ARG]: the table line of the latest upcall of CMD (for ARG)
last_upcall() { upcalls | awk -F'\t' -v c="$1" -v a="${2-}" '$4==c && (a=="" || $5==a){l=$0} END{print l}'; }
# field N of a table line (1 n, 2 phase, 3 start, 4 cmd, 5 arg, 6 env0, 7 env1, 8 end, 9 rc, 10 prog, 11 overlap)
fld() { printf '%s\n' "$1" | cut -f"$2"; }
# the id of the latest create whose client has (Y) or lacks (N) a session
last_create_id() { upcalls | awk -F'\t' -v s="NFSDCLTRACK_CLIENT_HAS_SESSION=$1" -v m="${2-}" \
    '$4=="create" && $6==s && (m=="" || index($5, m)){id=$5} END{print id}'; }
hexof() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# grace period as the kernel saw it: from "NFSD: starting N-second grace period"
# (the last one before now) to the next gracedone upcall; prints "start end" (end "-" if none yet)
grace_window() {
    awk '
        function ts(l, s) { match(l, /^\[ *[0-9]+\.[0-9]+\]/); s = substr(l, 2, RLENGTH - 2); gsub(/ /, "", s); return s + 0 }
        /NFSD: starting [0-9]+-second grace period/ { gs = ts($0); ge = "-" }
        /nfsd4_umh_cltrack_upcall: cmd: gracedone/ { if (gs != "" && ge == "-") ge = ts($0) }
        END { if (gs == "") print "- -"; else print gs, ge }' "$UMHLOG"
}

# ------------------------------------------------------------------ cld upcalls
# start_cld_trace (once nfsd is loaded): kprobe events on rpc_queue_upcall()
# (nfsd queues a cld message: its version, command, xid and client name, read
# from the message buffer, struct rpc_pipe_msg's data at +16) and on
# cld_pipe_downcall() (the daemon writes a reply: xid, status and name, read
# from the user's buffer), into the same trace log as the umh events.  cld.awk
# turns them into one line per upcall (cld_upcalls below).
start_cld_trace() {
    [ -e /run/umh-trace.ok ] || return 1
    echo 'p:e2e/cld_up rpc_queue_upcall vers=+0(+16(%si)):u8 cmd=+1(+16(%si)):u8 xid=+4(+16(%si)):u32 name=+10(+16(%si)):string' >> $TRACEFS/kprobe_events 2>/dev/null || return 1
    echo 'p:e2e/cld_down cld_pipe_downcall xid=+u4(%si):u32 status=+u2(%si):s16 name=+u10(%si):ustring' >> $TRACEFS/kprobe_events 2>/dev/null \
        || echo 'p:e2e/cld_down nfsd:cld_pipe_downcall xid=+u4(%si):u32 status=+u2(%si):s16 name=+u10(%si):ustring' >> $TRACEFS/kprobe_events 2>/dev/null || return 1
    echo 1 > $TRACEFS/events/e2e/cld_up/enable && echo 1 > $TRACEFS/events/e2e/cld_down/enable || return 1
    # optional: the pipe's creation (rpc_mkpipe_dentry) and each open of an rpc_pipefs pipe
    echo 'p:e2e/pipe_mk rpc_mkpipe_dentry' >> $TRACEFS/kprobe_events 2>/dev/null && echo 1 > $TRACEFS/events/e2e/pipe_mk/enable
    echo 'p:e2e/pipe_open rpc_pipe_open' >> $TRACEFS/kprobe_events 2>/dev/null && echo 1 > $TRACEFS/events/e2e/pipe_open/enable
    touch /run/cld-trace.ok
}
cld_upcalls() { awk -f "$HERE/cld.awk" "$KTRACE"; }
# cld_count CMD [NAME]: cld upcalls of CMD (Create, Remove, GraceStart, ...) answered so far
cld_count() { cld_upcalls | awk -F'\t' -v c="$1" -v a="${2-}" '$4==c && $7!="-" && (a=="" || $6==a){n++} END{print n+0}'; }
# cld_wait CMD N TIMEOUT [NAME]: N answered upcalls of CMD (for NAME)
cld_wait() { _c=$1 _n=$2 _t=$3; shift 3; wait_until "$_t" cld_ge "$_c" "$_n" "${1-}"; }
cld_ge() { [ "$(cld_count "$1" "${3-}")" -ge "$2" ]; }
# cld_last CMD [NAME]: the table line of the latest upcall of CMD (for NAME)
cld_last() { cld_upcalls | awk -F'\t' -v c="$1" -v a="${2-}" '$4==c && (a=="" || $6==a){l=$0} END{print l}'; }
# every cld upcall queued so far was answered
cld_quiet() { cld_upcalls | awk -F'\t' '$7=="-"{busy=1} END{exit busy}'; }
