#!/usr/bin/env bash
# A create/check/gracedone round on a demo store in a temporary directory,
# printing the store's files after each step.
#
#   npm ci && bash scripts/demo.sh          (npm ci builds dist/)
#
# It builds nothing: it runs dist/nfsdcltrack (or the program named by
# $NFSDCLTRACK) the way the kernel does, with an empty environment plus the
# NFSDCLTRACK_* variables of each upcall, and -f so that log lines go to
# stderr instead of syslog. v4_end_grace is a plain file in the temporary
# directory (NFSDCLTRACK_END_GRACE_FILE), so nothing outside it is touched.
# Exits non-zero if any upcall's exit status is not the expected one.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prog=${NFSDCLTRACK:-$here/dist/nfsdcltrack}
if [ ! -x "$prog" ]; then
    echo "demo: $prog is missing: build first (npm ci, or node scripts/build.mjs)" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nfsdcltrack-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
store=$tmp/store
endgrace=$tmp/v4_end_grace
: > "$endgrace"

# Client ids as the kernel sends them: the nfs_client_id4 in hex.
A=$(printf 'Linux NFSv4.0 alpha' | od -An -tx1 | tr -d ' \n')     # v4.0 client
B=$(printf 'Linux NFSv4.2 bravo' | od -An -tx1 | tr -d ' \n')     # session client
C=$(printf 'Linux NFSv4.2 charlie' | od -An -tx1 | tr -d ' \n')   # session client that never comes back

bold() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n%s\n' "$*"; fi; }

show() {
    local f
    for f in "$store"/clients.snap "$store"/clients.journal; do
        [ -e "$f" ] || continue
        echo "  --- ${f#"$tmp"/}"
        sed 's/^/  | /' "$f"
    done
    if [ -s "$endgrace" ]; then echo "  --- v4_end_grace: $(cat "$endgrace")"; fi
}

# upcall EXPECTED [VAR=value ...] -- COMMAND [ARG]
upcall() {
    local want=$1 vars=() status
    shift
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    echo "\$ ${vars[*]:+${vars[*]} }nfsdcltrack -s \$STORE $*"
    set +e
    env -i NFSDCLTRACK_END_GRACE_FILE="$endgrace" "${vars[@]}" "$prog" -f -s "$store" "$@" 2>&1 | sed 's/^/  (log) /'
    status=${PIPESTATUS[0]}
    set -e
    echo "  exit status $status"
    if [ "$status" != "$want" ]; then
        echo "demo: expected exit status $want from '$*', got $status" >&2
        exit 1
    fi
}

echo "Demo store: $store (removed at the end)"
echo "Program:    $prog"

boot1=$(date +%s)
bold "1. First boot: init creates the store. No client can still be owed a reclaim, so grace is lifted at once."
upcall 0 NFSDCLTRACK_GRACE_START="$boot1" -- init
show
: > "$endgrace"

bold "2. Three clients establish state: a v4.0 client (A) and two session clients (B, C)."
upcall 0 -- create "$A"
upcall 0 NFSDCLTRACK_CLIENT_HAS_SESSION=Y NFSDCLTRACK_GRACE_START="$boot1" -- create "$B"
upcall 0 NFSDCLTRACK_CLIENT_HAS_SESSION=Y NFSDCLTRACK_GRACE_START="$boot1" -- create "$C"
show

bold "3. The server reboots (one second later). init finds clients still owed a reclaim: grace stays on."
sleep 1.1
boot2=$(date +%s)
while [ "$(date +%s)" -le "$boot2" ]; do sleep 0.2; done   # records made from now on are newer than the boot
upcall 0 NFSDCLTRACK_GRACE_START="$boot2" -- init
show

bold "4. A and B reclaim. check of the v4.0 client refreshes its time; B then does create (RECLAIM_COMPLETE).
   Grace still cannot end early: A is a v4.0 client, and C has not reclaimed."
upcall 0 -- check "$A"
upcall 0 NFSDCLTRACK_CLIENT_HAS_SESSION=Y -- check "$B"
upcall 0 NFSDCLTRACK_CLIENT_HAS_SESSION=Y NFSDCLTRACK_GRACE_START="$boot2" -- create "$B"
show

bold "5. A client the store has never seen may not reclaim (exit 255)."
upcall 255 NFSDCLTRACK_CLIENT_HAS_SESSION=Y -- check "$(printf 'stranger' | od -An -tx1 | tr -d ' \n')"

bold "6. Grace ends: gracedone <boot time> removes C, whose record predates the boot, and compacts the store."
upcall 0 -- gracedone "$boot2"
show

bold "7. C is gone for good: it may not reclaim after the next reboot."
upcall 255 NFSDCLTRACK_CLIENT_HAS_SESSION=Y -- check "$C"

bold "The records, with their ids decoded (replaying snapshot + journal with awk):"
awk '
function hex(h,   i, s, c) {
    if (h == "-") return "(empty id)"
    s = ""
    for (i = 1; i < length(h); i += 2) {
        c = (index("0123456789abcdef", substr(h, i, 1)) - 1) * 16 + index("0123456789abcdef", substr(h, i + 1, 1)) - 1
        s = s ((c >= 32 && c < 127) ? sprintf("%c", c) : sprintf("\\x%02x", c))
    }
    return s
}
FNR == 1 { if (FILENAME ~ /snap$/) g = substr($3, 5) + 0; next }
FILENAME ~ /snap$/ && $1 != "~" { t[$1] = $2; s[$1] = $3; next }
FILENAME ~ /journal$/ && $1 + 0 == g && $3 == "set" { t[$4] = $5; s[$4] = $6 }
FILENAME ~ /journal$/ && $1 + 0 == g && $3 == "del" { delete t[$4] }
END { for (id in t) printf "  %-24s time=%s session=%s\n", hex(id), t[id], s[id] }
' "$store/clients.snap" "$store/clients.journal" | sort

echo
echo "Done: every upcall returned the expected status."
