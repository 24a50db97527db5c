# R1's table (vm-storm.sh storm.tsv, one line per tracker) as Markdown:
#   tracker clients41 grace g1 start-ms median p90 n reclaimed41 reclaimed40 grace2 g2
BEGIN {
    FS = "\t"
    NAME["daemon"] = "our daemon (nfsdcld-ts)"; NAME["nfsdcld"] = "Debian's nfsdcld"
    NAME["cli"] = "our nfsdcltrack (upcall)"; NAME["c"] = "C nfsdcltrack (upcall)"
    print "| tracker | v4.1+ clients | grace end (s, of configured) | start upcall (ms) | per-client upcall median / p90 (ms, n) | v4.1+ reclaims | v4.0 reclaims | v4.0 phase grace (s, of configured) |"
    print "|---|---|---|---|---|---|---|---|"
}
{
    printf "| %s | %s | %s of %s | %s | %s / %s (%s) | %s | %s | %s of %s |\n", \
        ($1 in NAME ? NAME[$1] : $1), $2, $4, $3, $5, $6, $7, $8, $9, $10, $12, $11
}
