#!/usr/bin/env bash
# The full-size reclaim storm of the kernel e2e (test/kernel-e2e, boot 5,
# scenario R1): E2E_STORM_CLIENTS clients (default 200), each in its own
# network and UTS namespace of one qemu VM, reclaim their locks under our cld
# daemon, Debian's nfsdcld, our upcall program and the C one, three timed
# storms under each cld tracker; CI runs the same boot small (16 clients, our
# daemon and nfsdcld, one storm each: functional checks, no timing verdict).  Needs root (qemu, apt-get download); prints the
# harness's SKIP line and exits 0 where qemu cannot run.  Writes the table,
# the machine and its load to bench/results-storm.md.
#   bash bench/storm-e2e.sh            (npm run bench runs it last; npm run bench:storm)
set -uo pipefail
cd "$(dirname "$0")/.."
export E2E_BOOTS=s
export E2E_STORM_CLIENTS=${E2E_STORM_CLIENTS:-200}
export E2E_STORM_TRACKERS=${E2E_STORM_TRACKERS:-daemon,nfsdcld,cli,c}
export E2E_STORM_REPEAT=${E2E_STORM_REPEAT:-3}
export E2E_STORM_GRACE=${E2E_STORM_GRACE:-900}
export E2E_WORK=${E2E_WORK:-/tmp/kernel-e2e-storm}
export E2E_OUT=${E2E_OUT:-$E2E_WORK/out}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date -u +%H:%M)
mkdir -p "$E2E_WORK"
bash test/kernel-e2e/run-all.sh 2>&1 | tee "$E2E_WORK/storm-e2e.log"
rc=${PIPESTATUS[0]}
[ -s "$E2E_OUT/s/storm.tsv" ] || exit $rc
{
    echo "# Reclaim storm under the real nfsd (kernel e2e boot 5, R1)"
    echo
    echo "Written by \`bench/storm-e2e.sh\` ($(date -u +%F), $t0-$(date -u +%H:%M) UTC): $E2E_STORM_CLIENTS clients, each in its own"
    echo "network and UTS namespace of one qemu VM (Debian 12's kernel $(ls "$E2E_WORK/kroot/lib/modules" 2>/dev/null), 2 vCPUs,"
    echo "$(sed -n 's/^kernel-e2e: total .*; \(tcg\|kvm\)).*/\1/p' "$E2E_WORK/storm-e2e.log")); host: $(nproc) × $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1),"
    echo "load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (a shared machine: other"
    echo "jobs ran beside it). Grace end: from the kernel's \"NFSD: starting N-second grace"
    echo "period\" to its GraceDone/gracedone upcall, with only the v4.1+ clients to reclaim;"
    echo "upcall latencies as the kernel sees them (kprobes), per-client upcalls: cld Create,"
    echo "umh check and create. The v4.0 clients reclaim at a second restart (their"
    echo "grace period runs its configured time under cld). Checks: $(grep -c '^PASS\[R1\]' "$E2E_OUT/s/result.txt") passed, $(grep -c '^FAIL\[R1\]' "$E2E_OUT/s/result.txt") failed."
    echo
    awk -f test/kernel-e2e/storm-table.awk "$E2E_OUT/s/storm.tsv"
    grep '^FAIL\[R1\]' "$E2E_OUT/s/result.txt" | sed 's/^/    /'
} > bench/results-storm.md
echo "bench/storm-e2e.sh: wrote bench/results-storm.md"
exit $rc
