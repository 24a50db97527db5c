# Read an nfsdcltrack-ts store with nothing but awk, as the format promises
# (docs/format.md, man nfsdcltrack STORE FORMAT): the snapshot clients.snap,
# then the journal clients.journal replayed on top when it belongs to the
# snapshot's generation.  Prints the records that are live under the store's
# cld epochs, one a line: "<hexid|-> <time> <sess> <epoch> <older epoch|->",
# sorted; with -v what=epochs prints "<current> <recovery>" instead.
#   awk -f store.awk DIR/clients.snap DIR/clients.journal   (a missing file: /dev/null)
# Both format versions are read (v1 has no epochs: every record is in epoch 1,
# current 1, recovery 0).  Checksums are not verified here (the program's own
# `verify` does that); lines of the wrong shape are reported on stderr as "bad=N".
#   snapshot v2: #nfsdcltrack-snapshot v2 gen=<n> ... current=<c> recovery=<r> <crc>
#                <hexid|-> <time> <sess> <epoch> <ph|-> <older epoch|-> <older ph|-> <crc>
#                ~ <time> <count> <crc>                           an index line (ignored)
#   journal v2:  #nfsdcltrack-journal v2 gen=<n> <crc>
#                <gen> <seq> set <id> <state: 6 fields> <prev state: 6 fields> <crc>
#                <gen> <seq> del <id> - - - - - - <prev state> <crc>
#                <gen> <seq> lost - (12 x -) <crc>
#                <gen> <seq> grace - <current> <recovery> <crc>
#   v1: snapshot "<hexid|-> <time> <sess> <crc>", journal "<gen> <seq> set|del|lost <id> <time> <sess> <pt> <ps> <crc>"
function hdrnum(line, key,   g) {
    if (!match(line, key "=[0-9]+")) return ""
    g = substr(line, RSTART + length(key) + 1, RLENGTH - length(key) - 1); return g + 0
}
function live(e) { return e != "-" && e != "" && (e + 0 == cur || (rec != 0 && e + 0 == rec)) }
BEGIN { cur = 1; rec = 0 }
FILENAME == ARGV[1] {
    if (FNR == 1 && /^#/) {
        sgen = hdrnum($0, "gen")
        if (hdrnum($0, "current") != "") cur = hdrnum($0, "current")
        if (hdrnum($0, "recovery") != "") rec = hdrnum($0, "recovery")
        next
    }
    if (/^#/ || /^~/ || NF == 0) next
    if (NF == 4) { t[$1] = $2; s[$1] = $3; ep[$1] = 1; oe[$1] = "-"; next }
    if (NF == 8) { t[$1] = $2; s[$1] = $3; ep[$1] = $4; oe[$1] = $6; next }
    bad++; next
}
FILENAME == ARGV[2] {
    if (FNR == 1 && /^#/) { jgen = hdrnum($0, "gen"); next }
    if (/^#/ || NF == 0) next
    if (jgen == "") jgen = $1 + 0
    if (sgen != "" && jgen + 0 < sgen + 0) next      # stale journal: already folded into the snapshot
    if (NF == 9) {                                    # v1
        if ($3 == "set") { t[$4] = $5; s[$4] = $6; ep[$4] = 1; oe[$4] = "-" }
        else if ($3 == "del") { delete t[$4] }
        else if ($3 != "lost") bad++
    } else if (NF == 17) {                            # v2 set / del / lost
        if ($3 == "set") { t[$4] = $5; s[$4] = $6; ep[$4] = $7; oe[$4] = $9 }
        else if ($3 == "del") { delete t[$4] }
        else if ($3 != "lost") bad++
    } else if (NF == 7 && $3 == "grace") { cur = $5 + 0; rec = $6 + 0 }
    else bad++
    next
}
END {
    if (what == "epochs") { print cur, rec; exit }
    for (id in t) {
        if (live(ep[id])) print id, t[id], s[id], ep[id], (live(oe[id]) ? oe[id] : "-") | "LC_ALL=C sort"
        else if (live(oe[id])) print id, t[id], s[id], oe[id], "-" | "LC_ALL=C sort"
    }
    close("LC_ALL=C sort")
    if (bad) print "bad=" bad > "/dev/stderr"
}
