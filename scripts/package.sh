#!/bin/bash
# Build a Debian package of nfsdcltrack-ts: dist/NAME_VERSION_ARCH.deb
#
#   scripts/package.sh [--out DIR]      (npm run package)
#
# What is in it, all staged by scripts/install.sh --destdir (the same install
# as by hand, with PREFIX=/usr):
#   /sbin/nfsdcltrack                  the upcall's launcher, in the C program's place: the
#                                      kernel's default cltrack_prog. nfs-kernel-server's
#                                      /sbin/nfsdcltrack is diverted (preinst: dpkg-divert
#                                      --rename to /sbin/nfsdcltrack.nfs-utils), not overwritten,
#                                      and renamed back by postrm; so is its man page
#   /usr/sbin/nfsdcld-ts               the cld daemon's launcher (nfs-kernel-server owns nfsdcld)
#   /usr/lib/nfsdcltrack-ts/           the bundles (cli.bun.js + .jsc, admin.js, nfsdcld.js),
#                                      the launchers' copies, and runtime/bun
#   /lib/systemd/system/nfsdcld-ts.service   installed, neither enabled nor started, and
#                                      nfsdcld.service is not masked: README.md has the commands
#   /usr/share/man/man8/nfsdcltrack.8.gz, nfsdcld-ts.8.gz
#   /usr/share/doc/nfsdcltrack-ts/copyright, changelog.gz
#
# Runtimes. The upcall runs Bun, shipped in the package (runtime/bun, from the
# npm package @oven/bun-linux-x64, the one the build uses): Debian 12's own
# nodejs is 18, too old for us (Node >= 20), so a package depending on Node
# could not be installed from Debian 12's archive alone, and Bun starts the
# upcall 3.5x faster anyway (docs/performance.md). The daemon does NOT run
# under Bun: measured with NFSDCLD_OURS pointing at a Bun launcher, the
# daemon's suites fail (test/cld-daemon.ts: no reply to the first upcall
# within 20 s in every case). So it keeps its Node launcher (/usr/bin/node),
# and the package Recommends nodejs (>= 20) rather than Depends on it: the
# upcall, the point of the package, works without it; the daemon, which an
# administrator must enable by hand anyway, needs it (NodeSource on Debian
# 12; Debian 13's nodejs is 20). The Node-only files of dist/ (cli.js,
# node-launch.js, cli.js.v8cache) are left out: the upcall is Bun's.
#
# Privileges: the upcall's launcher starts its runtime through usr/lib/$NAME/nocaps,
# which empties every capability set first (scripts/build.mjs, scripts/nocaps.S:
# a static program of a few hundred bytes, written by the build, no library);
# the daemon's through util-linux's setpriv (Essential), which leaves it
# CAP_DAC_READ_SEARCH alone, to read nfsd's 0600 clients/ (lib/cld/carry.ts).
#
# Reproducible: the same checkout gives the same bytes (test/package.ts builds
# twice and compares). SOURCE_DATE_EPOCH (default: the last commit's time)
# stamps every file, the changelog's date and the ar members; dpkg-deb
# --root-owner-group gives root:root owners and sorts the tar by name; the
# man pages are gzip -9n (no name, no time); the bundles are byte-identical
# between builds (esbuild is deterministic; Bun writes its input's path into
# cli.bun.js and the .jsc, so scripts/build.mjs names that input by the hash
# of its content; V8's code cache differs between runs, and is not shipped).
#
# lintian (bookworm's 2.116, `lintian --info dist/*.deb`): its errors and
# warnings are fixed or overridden (usr/share/lintian/overrides/nfsdcltrack-ts),
# each for this reason:
#   unstripped-binary-or-object [runtime/bun] (an error): fixed, runtime/bun
#       is strip --strip-unneeded'ed here (48 KB of .symtab; the bytecode
#       cache still loads: the upcall keeps its start-up time).
#   embedded-library libjpeg [runtime/bun] (an error; lintian finds it once
#       the binary is stripped): overridden. Bun is one statically linked
#       executable carrying its own copies of its libraries (libjpeg for
#       Bun.Image, zlib, BoringSSL, SQLite...): that is how upstream ships it,
#       and there is no build of it against Debian's shared libraries. The
#       upcall never reaches the JPEG code.
#   hardening-no-pie, hardening-no-relro [runtime/bun]: overridden. Bun's
#       upstream build (a non-PIE executable, the JIT's choice); rebuilding Bun
#       is out of this package's reach. (hardening-no-bindnow and the
#       spelling-error-in-binary tags on it are informational.)
#   The launchers' interpreter, usr/lib/nfsdcltrack-ts/nocaps, is a file of
#       the package (lintian does not tag such an interpreter unusual).
#   shared-library-lacks-prerequisites [nocaps]: overridden. nocaps is a
#       static position-independent executable (ELF type ET_DYN with no
#       PT_INTERP, as gcc -static-pie makes), which lintian takes for a
#       shared library; it calls no library at all, only the kernel, so there
#       is no prerequisite to declare (scripts/nocaps.S).
#   systemd-service-file-refers-to-unusual-wantedby-target nfs-server.service:
#       overridden. nfsdcld-ts.service stands in for nfsdcld.service, which is
#       wanted by nfs-server.service in the same way, and must be started
#       before nfsd is; it is enabled only by hand (README.md).
# Informational only: FSSTND-dir-in-manual-page /usr/etc/ (the man page lists
# nfs-utils' configure-time fallbacks for nfs.conf, /usr/etc among them, on
# purpose), package-supports-alternative-init-but-no-init.d-script (the
# daemon is systemd's only; by hand, nfsdcld-ts(8) starts it).
#
# Compression: gzip (DEB_COMPRESS=xz|zstd|none): xz takes 2.5 minutes for Bun's 107 MB here,
# gzip 8 s, for a package 25% bigger.
#
# Options: --out DIR (default dist/). Environment: SOURCE_DATE_EPOCH, DEB_COMPRESS,
# DEBFULLNAME/DEBEMAIL (the Maintainer field).
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT=$ROOT/dist
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2;;
        --out=*) OUT=${1#*=}; shift;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
        *) echo "package.sh: unknown option: $1" >&2; exit 1;;
    esac
done
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
die() { echo "package.sh: error: $*" >&2; exit 2; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed"

NAME=nfsdcltrack-ts
VERSION=$(node -p "require('$ROOT/package.json').version")
ARCH=$(dpkg --print-architecture)
[ "$ARCH" = amd64 ] || die "only amd64 is packaged (the Bun binary is x86-64); this is $ARCH"
MAINTAINER="${DEBFULLNAME:-nfsdcltrack-ts developers} <${DEBEMAIL:-nfsdcltrack-ts@users.noreply.github.com}>"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nfsdcltrack-package.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PKG=$WORK/root

# -------- build (into WORK, not dist/: tests may be running from dist/)
NFSDCLTRACK_DIST=$WORK/dist NFSDCLTRACK_RUNTIME=bun node "$ROOT/scripts/build.mjs" 2>"$WORK/build.log" \
    || { cat "$WORK/build.log" >&2; die "the build failed"; }
head -1 "$WORK/dist/nfsdcltrack" | grep -q "^#!$WORK/dist/nocaps " || die "dist/nfsdcltrack does not drop capabilities through dist/nocaps: $(head -1 "$WORK/dist/nfsdcltrack")"
head -1 "$WORK/dist/nfsdcld" | grep -q "^#!/usr/bin/env -S /usr/bin/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+dac_read_search -- " \
    || die "dist/nfsdcld does not keep CAP_DAC_READ_SEARCH alone through setpriv: $(head -1 "$WORK/dist/nfsdcld")"

# -------- stage
bash "$ROOT/scripts/install.sh" --source "$ROOT" --dist "$WORK/dist" --destdir "$PKG" --prefix /usr \
    --target /sbin/nfsdcltrack --cld-target /usr/sbin/nfsdcld-ts --unitdir /lib/systemd/system \
    --no-selftest >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; die "scripts/install.sh --destdir failed"; }
LIB=$PKG/usr/lib/$NAME
rm -f "$LIB/install-manifest" "$LIB/cli.js" "$LIB/node-launch.js" "$LIB/cli.js.v8cache"
[ -x "$LIB/runtime/bun" ] || die "the staging has no runtime/bun"
strip --strip-unneeded "$LIB/runtime/bun"
"$LIB/runtime/bun" --version >/dev/null || die "runtime/bun does not run once stripped"
grep -q "^#!.* /usr/lib/$NAME/runtime/bun\$" "$PKG/sbin/nfsdcltrack" || die "/sbin/nfsdcltrack does not run the packaged Bun: $(head -1 "$PKG/sbin/nfsdcltrack")"
# man pages: gzip -9n (lintian; and reproducible: no name, no time stamp)
for m in "$PKG"/usr/share/man/man8/*.8; do gzip -9n "$m"; done
DOC=$PKG/usr/share/doc/$NAME
install -d "$DOC" "$PKG/usr/share/lintian/overrides"
install -m 644 "$ROOT/packaging/copyright" "$DOC/copyright"
{
    echo "$NAME ($VERSION) unstable; urgency=medium"
    echo
    echo "  * Package built by scripts/package.sh from the project's sources."
    echo
    echo " -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$DOC/changelog.gz"
cat > "$PKG/usr/share/lintian/overrides/$NAME" <<EOF
# The reasons are in scripts/package.sh.
# Bun's upstream build: statically linked, not PIE.
$NAME: embedded-library libjpeg [usr/lib/$NAME/runtime/bun]
$NAME: hardening-no-pie [usr/lib/$NAME/runtime/bun]
$NAME: hardening-no-relro [usr/lib/$NAME/runtime/bun]
# A static-pie program that links nothing, not a shared library.
$NAME: shared-library-lacks-prerequisites [usr/lib/$NAME/nocaps]
# In nfsdcld.service's place, wanted by nfs-server.service as it is.
$NAME: systemd-service-file-refers-to-unusual-wantedby-target nfs-server.service [lib/systemd/system/nfsdcld-ts.service]
EOF
chmod 644 "$DOC/changelog.gz" "$PKG/usr/share/lintian/overrides/$NAME"

# -------- control
install -d -m 755 "$PKG/DEBIAN"
install -m 755 "$ROOT/packaging/preinst" "$ROOT/packaging/postrm" "$PKG/DEBIAN/"
# Installed-Size: KiB, each file rounded up, as dpkg-gencontrol counts
SIZE=$(find "$PKG" -path "$PKG/DEBIAN" -prune -o \( -type f -printf '%s\n' \) -o \( ! -type f -printf '1024\n' \) | awk '{ s += int(($1 + 1023) / 1024) } END { print s }')
# libc6 (>= 2.17): the newest glibc symbol version runtime/bun uses
GLIBC=$(objdump -T "$LIB/runtime/bun" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 || true)
cat > "$PKG/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: libc6 (>= ${GLIBC:-2.17})
Recommends: nodejs (>= 20)
Suggests: nfs-kernel-server
Section: net
Priority: optional
Description: NFSv4 client tracking (nfsdcltrack, nfsdcld) with a plain-text store
 Drop-in replacements, in TypeScript, for nfs-utils' nfsdcltrack (the
 program the kernel's NFS server runs to record NFSv4 clients on stable
 storage) and nfsdcld (the daemon it talks to through the cld pipe), on one
 checksummed, append-only text journal with a sorted snapshot instead of an
 SQLite database.
 .
 The package takes /sbin/nfsdcltrack over by a diversion (nfs-kernel-server's
 C program is kept as /sbin/nfsdcltrack.nfs-utils and restored on removal).
 The daemon is installed as nfsdcld-ts with its unit nfsdcld-ts.service,
 neither enabled nor started; it needs nodejs (>= 20). Both run with no
 capabilities.
EOF
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"
chmod 644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/md5sums"

# -------- build the .deb: fixed times, root:root, name-sorted tar (dpkg-deb)
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
DEB=$OUT/${NAME}_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group "-Z${DEB_COMPRESS:-gzip}" --build "$PKG" "$DEB.tmp" >/dev/null
mv -f "$DEB.tmp" "$DEB"
echo "$DEB"
