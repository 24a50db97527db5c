# Read an nfsdcltrack-ts store with nothing but awk, as the format promises
# (see man nfsdcltrack, STORE FORMAT): the snapshot clients.snap, then the
# journal clients.journal replayed on top when it belongs to the snapshot's
# generation.  Prints the current records, one a line: "<hexid|-> <time> <sess>".
#   awk -f store.awk DIR/clients.snap DIR/clients.journal   (a missing file: /dev/null)
# Checksums are not verified here (the program's own `verify` does that);
# lines of the wrong shape are counted and reported on stderr as "bad=N".
#   snapshot: #nfsdcltrack-snapshot v1 gen=<n> ...    header
#             <hexid|-> <time> <sess> <crc>           a record
#             ~ <time> <count> <crc>                  an index line (ignored)
#   journal:  #nfsdcltrack-journal v1 gen=<n> <crc>   header
#             <gen> <seq> set <hexid|-> <time> <sess> <prevtime> <prevsess> <crc>
#             <gen> <seq> del <hexid|-> - - <prevtime> <prevsess> <crc>
#             <gen> <seq> lost - - - - - <crc>
function hdrgen(line,   g) {
    if (!match(line, /gen=[0-9]+/)) return ""
    g = substr(line, RSTART + 4, RLENGTH - 4); return g + 0
}
FILENAME == ARGV[1] {
    if (FNR == 1 && /^#/) { sgen = hdrgen($0); next }
    if (/^#/ || /^~/ || NF == 0) next
    if (NF != 4) { bad++; next }
    t[$1] = $2; s[$1] = $3; next
}
FILENAME == ARGV[2] {
    if (FNR == 1 && /^#/) { jgen = hdrgen($0); next }
    if (/^#/ || NF == 0) next
    if (NF != 9) { bad++; next }
    if (jgen == "") jgen = $1 + 0
    if (sgen != "" && jgen + 0 < sgen + 0) next      # stale journal: already folded into the snapshot
    if ($3 == "set") { t[$4] = $5; s[$4] = $6 }
    else if ($3 == "del") { delete t[$4]; delete s[$4] }
    else if ($3 != "lost") bad++
    next
}
END {
    for (id in t) print id, t[id], s[id] | "LC_ALL=C sort"
    close("LC_ALL=C sort")
    if (bad) print "bad=" bad > "/dev/stderr"
}
