# Turn the kernel log (dmesg) into one line per nfsdcltrack upcall, from the
# dprintk of nfsd4_umh_cltrack_upcall() (nfsd_debug bit NFSDDBG_PROC):
#   [ 6.857742] nfsd4_umh_cltrack_upcall: cmd: init
#   [ 6.857860] nfsd4_umh_cltrack_upcall: arg: (null)
#   [ 6.857891] nfsd4_umh_cltrack_upcall: env0: NFSDCLTRACK_GRACE_START=1795480886
#   [ 6.857912] nfsd4_umh_cltrack_upcall: env1: (null)
#   [ 7.165854] nfsd4_umh_cltrack_upcall: /sbin/nfsdcltrack return value: 0
# and of the phase marks the test writes to /dev/kmsg ("e2e-phase: NAME").
#
# Output, tab-separated, one upcall a line, in the order the kernel started them:
#   n phase start cmd arg env0 env1 end rc prog overlap
# start/end: kernel timestamps (s) of the "cmd:" and "return value:" lines, so
# end-start is the upcall's latency as nfsd sees it (call_usermodehelper with
# UMH_WAIT_PROC: fork, exec, run, exit, reap). rc: the program's exit status
# (the kernel logs the raw wait status, exit<<8), or the negative errno when
# the exec itself failed; "-" if it has not returned. The "return value" line
# names the program but not the command, so when upcalls overlap (several nfsd
# threads) returns are paired first-in first-out and every upcall that ran
# while another was running gets overlap=1: its rc/end may belong to the other.
function ts(line,   s) {
    if (!match(line, /^\[ *[0-9]+\.[0-9]+\]/)) return -1
    s = substr(line, 2, RLENGTH - 2); gsub(/ /, "", s); return s + 0
}
BEGIN { OFS = "\t"; phase = "-"; n = 0; head = 1; tail = 0 }
/e2e-phase: / { sub(/.*e2e-phase: /, ""); phase = $1; next }
/nfsd4_umh_cltrack_upcall: cmd: / {
    n++; T[n] = ts($0); C[n] = $NF; P[n] = phase; A[n] = "-"; E0[n] = "-"; E1[n] = "-"
    if (tail >= head) { for (i = head; i <= tail; i++) OV[Q[i]] = 1; OV[n] = 1 }
    Q[++tail] = n; last = n; next
}
/nfsd4_umh_cltrack_upcall: arg: / { v = $0; sub(/.*: arg: /, "", v); A[last] = (v == "" ? "\"\"" : v); next }
/nfsd4_umh_cltrack_upcall: env0: / { E0[last] = $NF; next }
/nfsd4_umh_cltrack_upcall: env1: / { E1[last] = $NF; next }
/nfsd4_umh_cltrack_upcall: .* return value: / {
    if (tail >= head) {
        k = Q[head++]; TE[k] = ts($0); r = $NF + 0
        R[k] = (r < 0 ? r : int(r / 256)); PR[k] = $(NF - 3)
    }
    next
}
END {
    for (i = 1; i <= n; i++)
        print i, P[i], sprintf("%.6f", T[i]), C[i], A[i], E0[i], E1[i], \
              (i in TE ? sprintf("%.6f", TE[i]) : "-"), (i in R ? R[i] : "-"), (i in PR ? PR[i] : "-"), OV[i] + 0
}
