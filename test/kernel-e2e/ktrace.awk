# The same upcall table as upcalls.awk, from kprobe events on the kernel's
# call_usermodehelper() (set up by vm-lib.sh start_umh_trace):
#   nfsd-412 [000] ..... 63.331234: umh_call: (call_usermodehelper+0x0/0xb0) path="/usr/local/sbin/nfsdcltrack" cmd="check" arg="4c69..." e0="NFSDCLTRACK_..." e1=(fault)
#   nfsd-412 [000] ..... 64.101101: umh_ret: (nfsd4_umh_cltrack_check+0x5a/0x90 <- call_usermodehelper) ret=65280
# and the phase marks written to trace_marker ("e2e-phase: NAME").  Entry and
# return are paired by the calling task's pid (an nfsd thread, rpc.nfsd, or the
# laundromat), so the exit status of each upcall is exact even when several
# run at once; overlap=1 still marks upcalls that ran while another was
# running (their latency is not a clean sample).
#   n phase start cmd arg env0 env1 end rc prog overlap
function ts(line) { if (!match(line, / [0-9]+\.[0-9]+: /)) return -1; return substr(line, RSTART + 1, RLENGTH - 3) + 0 }
function val(line, key,   s) {
    if (match(line, " " key "=\"[^\"]*\"")) { s = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 4); return (s == "" ? "\"\"" : s) }
    return "(null)"
}
# the calling task's pid: the digits after the last "-" of "comm-pid" (ftrace may print
# the comm as "<...>" when it has dropped it from its cache, so only the pid is reliable)
function task(line,   t) { t = line; sub(/^ */, "", t); sub(/ +\[[0-9]+\].*/, "", t); sub(/.*-/, "", t); return t }
BEGIN { OFS = "\t"; phase = "-"; n = 0; running = 0 }
/e2e-phase: / { s = $0; sub(/.*e2e-phase: /, "", s); split(s, w, " "); phase = w[1]; next }
/ umh_call: / {
    p = val($0, "path"); if (p !~ /nfsdcltrack/) next
    n++; T[n] = ts($0); C[n] = val($0, "cmd"); A[n] = val($0, "arg"); E0[n] = val($0, "e0"); E1[n] = val($0, "e1")
    P[n] = phase; PR[n] = p; who = task($0); open[who] = n
    if (running > 0) { for (k in live) OV[k] = 1; OV[n] = 1 }
    live[n] = 1; running++
    next
}
/ umh_ret: / {
    who = task($0)
    if (!(who in open)) next
    k = open[who]; delete open[who]; delete live[k]; running--
    TE[k] = ts($0); r = $0; sub(/.* ret=/, "", r); r += 0
    R[k] = (r < 0 ? r : int(r / 256))
    next
}
END {
    for (i = 1; i <= n; i++)
        print i, P[i], sprintf("%.6f", T[i]), C[i], A[i], E0[i], E1[i], \
              (i in TE ? sprintf("%.6f", TE[i]) : "-"), (i in R ? R[i] : "-"), PR[i], OV[i] + 0
}
