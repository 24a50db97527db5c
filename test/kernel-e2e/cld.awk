# The cld upcalls as the kernel made them, from kprobe events (vm-lib.sh
# start_cld_trace):
#   nfsd-412 [000] ..... 63.33: cld_up: (rpc_queue_upcall+0x0/0x..) vers=2 cmd=0 xid=3 name="Linux NFSv4.2 e2e-server"
#   nfsdcld-90 [001] ..... 63.35: cld_down: (cld_pipe_downcall+0x0/0x..) xid=3 status=0 name="..."
# rpc_queue_upcall() is how nfsd queues each message on the pipe (a message
# re-queued after the daemon closed the pipe is queued again, same xid);
# cld_pipe_downcall() is the daemon's write of a reply (or, for GraceStart,
# of each client that may reclaim: status -115, EINPROGRESS).  One line per
# upcall:
#   n phase start cmd xid name end status ninprog inprog-names queued
# (end/status "-" while unanswered; inprog-names: the GraceStart's clients,
# "|"-separated; queued: how many times it was queued, >1 = re-queued)
function ts(line) { if (!match(line, / [0-9]+\.[0-9]+: /)) return -1; return substr(line, RSTART + 1, RLENGTH - 3) + 0 }
function num(line, key,   s) { if (!match(line, " " key "=-?[0-9]+")) return ""; s = substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 2); return s + 0 }
function str(line, key,   s) {
    if (match(line, " " key "=\"[^\"]*\"")) return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 4)
    return "-"
}
BEGIN {
    OFS = "\t"; phase = "-"; n = 0
    split("Create Remove Check GraceDone GraceStart GetVersion", CMDN, " ")
}
/e2e-phase: / { s = $0; sub(/.*e2e-phase: /, "", s); split(s, w, " "); phase = w[1]; next }
# harness actions on the same time line ("e2e-event: admin-remove <hexid>"): rows of their own
/e2e-event: / { s = $0; sub(/.*e2e-event: /, "", s); n++; T[n] = ts($0); C[n] = "event"; X[n] = "-"; NM[n] = s; P[n] = phase; Q[n] = 1; TE[n] = T[n]; ST[n] = 0; next }
/ cld_up: / {
    x = num($0, "xid"); c = num($0, "cmd")
    if ((x in open) && C[open[x]] == c && NM[open[x]] == str($0, "name")) { Q[open[x]]++; next }     # re-queued, same upcall
    n++; T[n] = ts($0); C[n] = c; X[n] = x; NM[n] = str($0, "name"); P[n] = phase; Q[n] = 1
    open[x] = n
    next
}
/ cld_down: / {
    x = num($0, "xid"); st = num($0, "status")
    if (!(x in open)) next
    k = open[x]
    if (st == -115) { IP[k]++; IN[k] = IN[k] (IN[k] == "" ? "" : "|") str($0, "name"); next }
    TE[k] = ts($0); ST[k] = st; delete open[x]
    next
}
END {
    for (i = 1; i <= n; i++) {
        cn = (C[i] == "event") ? "event" : (C[i] + 1 in CMDN) ? CMDN[C[i] + 1] : "cmd" C[i]
        if (C[i] == 4 || C[i] == 5 || C[i] == 3) NM[i] = "-"
        print i, P[i], sprintf("%.6f", T[i]), cn, X[i], (NM[i] == "" ? "-" : NM[i]), \
              (i in TE ? sprintf("%.6f", TE[i]) : "-"), (i in ST ? ST[i] : "-"), IP[i] + 0, (IN[i] == "" ? "-" : IN[i]), Q[i]
    }
}
