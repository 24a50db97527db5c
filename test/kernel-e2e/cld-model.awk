# What the store must hold after the cld upcalls the kernel made and the
# daemon acknowledged: nfsdcld's epoch rules (lib/tracking.ts, man nfsdcld),
# replayed over the cld table (cld.awk) in the order of the replies.
#   sort -t "$TAB" -k7,7n cld.tsv | awk -f cld-model.awk
# Prints the live records, "<hexid> <epoch>", sorted, as store.awk's fields 1
# and 4.  Starts from a new store (current 1, recovery 0).  Only answered
# upcalls with status 0 count; rows "event" (harness actions on the trace
# time line, written by vm-server.sh) with name "admin-remove <client>" stand
# for `nfsdcltrack remove`, which deletes the whole record; "v40-reclaimed
# <client>" says the harness saw that v4.0 client's reclaimed lock after the
# last GraceDone: the daemon then kept it in the current epoch (nfsd listed it
# holding state at GraceDone, lib/cld/carry.ts), where nfsdcld drops it;
# "v40-gone <client>": nfsd destroyed that carried client and the daemon
# removed its record (no Remove upcall comes for it).
function hex(s,   i, h) { h = ""; for (i = 1; i <= length(s); i++) h = h sprintf("%02x", ORD[substr(s, i, 1)]); return h }
function live(e) { return e != "-" && (e == cur || (rec != 0 && e == rec)) }
function inrec(h) { return rec != 0 && (h in E) && (E[h] == rec || O[h] == rec) }
BEGIN { FS = "\t"; cur = 1; rec = 0; for (i = 1; i < 256; i++) ORD[sprintf("%c", i)] = i }
$7 == "-" { next }
$4 == "event" {
    split($6, w, " "); h = w[2]
    if (w[1] == "admin-remove") { delete E[h]; delete O[h] }
    if (w[1] == "v40-reclaimed" && (h in W)) { E[h] = W[h]; O[h] = "-"; delete W[h] }
    if (w[1] == "v40-gone") { delete E[h]; delete O[h] }
    next
}
$8 != 0 { next }
$4 == "GraceStart" { if (rec == 0) rec = cur; cur++; split("", W); next }
# W: the clients a "v40-reclaimed" event may still keep (in the recovery epoch only, at GraceDone)
$4 == "GraceDone" { if (rec == 0) { rec = cur; cur++ } split("", W); for (h in E) if (inrec(h) && E[h] != cur && O[h] != cur) W[h] = cur; rec = 0; next }
$4 == "Create" { h = hex($6); r = inrec(h); E[h] = cur; O[h] = (r && rec != cur) ? rec : "-"; next }
$4 == "Remove" { h = hex($6); if (inrec(h)) { E[h] = rec; O[h] = "-" } else { delete E[h]; delete O[h] } next }
END {
    for (h in E) {
        if (live(E[h])) print h, E[h] | "LC_ALL=C sort"
        else if (live(O[h])) print h, O[h] | "LC_ALL=C sort"
    }
    close("LC_ALL=C sort")
}
