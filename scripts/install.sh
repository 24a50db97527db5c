#!/bin/bash
# Install nfsdcltrack-ts for the kernel (and uninstall it again).
#
#   scripts/install.sh [OPTIONS]               install (run `npm ci` first: it builds dist/)
#   scripts/install.sh --uninstall [OPTIONS]   undo a previous install, restoring what it replaced
#
# What an install puts in place (paths for the default PREFIX=/usr/local):
#   /usr/local/lib/nfsdcltrack-ts/        the bundled program (a copy of dist/), and the
#                                         runtime binary too when the build uses one from
#                                         node_modules (Bun), so nothing depends on the checkout
#   /usr/local/sbin/nfsdcltrack           the launcher the kernel runs (TARGET); it names its
#                                         runtime by absolute path, since the kernel passes no PATH
#   /usr/local/share/man/man8/nfsdcltrack.8
#   /usr/local/sbin/nfsdcld-ts            the cld daemon's launcher (CLD_TARGET), when dist/nfsdcld
#                                         is built; it runs LIBDIR/nfsdcld.js (and, at a first
#                                         start, LIBDIR/admin.js for the import)
#   /usr/local/share/man/man8/nfsdcld-ts.8
#   /usr/local/lib/systemd/system/nfsdcld-ts.service
#                                         the daemon's unit, which takes nfsdcld.service's place;
#                                         installed, never enabled: see README.md
#   /usr/local/lib/nfsdcltrack-ts/install-manifest   what was done, for --uninstall
#
# The daemon is installed as nfsdcld-ts, not nfsdcld: Debian's nfs-kernel-server
# owns /usr/sbin/nfsdcld (and nfsdcld.service runs it), so PREFIX=/usr would
# overwrite a packaged file that the next upgrade puts back, and a
# /usr/local/sbin/nfsdcld would shadow it for anyone typing its name.
#
# Options (PREFIX and DESTDIR may also come from the environment):
#   --prefix DIR        installation prefix (default /usr/local)
#   --destdir DIR       staging root for packaging: every file goes under DIR, the paths
#                       written into files are the final ones (default: none)
#   --target PATH       where the kernel-facing program goes (default PREFIX/sbin/nfsdcltrack).
#                       --target /sbin/nfsdcltrack replaces nfs-utils' C program, which is
#                       kept as /sbin/nfsdcltrack.pre-nfsdcltrack-ts and put back by --uninstall
#   --libdir DIR        default PREFIX/lib/nfsdcltrack-ts
#   --mandir DIR        default PREFIX/share/man
#   --cld-target PATH   where the daemon's launcher goes (default PREFIX/sbin/nfsdcld-ts)
#   --unitdir DIR       where nfsdcld-ts.service goes (default PREFIX/lib/systemd/system)
#   --storagedir DIR    the store the unit waits for (RequiresMountsFor=; default
#                       /var/lib/nfs/nfsdcltrack): give the storagedir of your nfs.conf
#   --kernel            point the running kernel at TARGET now, by writing it to
#                       /sys/module/nfsd/parameters/cltrack_prog (undone by --uninstall)
#   --kernel-persist    write /etc/modprobe.d/nfsdcltrack-ts.conf
#                       ("options nfsd cltrack_prog=TARGET"), read when nfsd is next loaded
#                       (removed by --uninstall)
#   --sysfs-param FILE  the module parameter file --kernel writes (default
#                       /sys/module/nfsd/parameters/cltrack_prog; for tests)
#   --modprobe-dir DIR  where --kernel-persist writes (default /etc/modprobe.d; DESTDIR applies)
#   --source DIR        the built checkout to install from (default: the one holding this script)
#   --dist DIR          its build output (default SOURCE/dist; scripts/package.sh builds elsewhere)
#   --no-selftest       skip running the installed program once (only done without DESTDIR)
#   --uninstall         undo the install recorded in LIBDIR/install-manifest
#   -h, --help
#
# Exit status: 0 on success, 1 on a usage error, 2 when something could not be done.
set -euo pipefail
umask 022

ME=install.sh
say() { echo "$ME: $*"; }
warn() { echo "$ME: warning: $*" >&2; }
die() { echo "$ME: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
TARGET= LIBDIR= MANDIR= CLD_TARGET= UNITDIR= SRC=$(dirname "$HERE") DIST=
STORAGEDIR=/var/lib/nfs/nfsdcltrack
UNIT_NAME=nfsdcld-ts.service
SYSFS_PARAM=/sys/module/nfsd/parameters/cltrack_prog
SYSFS_GIVEN=0
MODPROBE_DIR=/etc/modprobe.d
MODPROBE_NAME=nfsdcltrack-ts.conf
KERNEL=0 PERSIST=0 UNINSTALL=0 SELFTEST=1
SAVE_SUFFIX=.pre-nfsdcltrack-ts
MARK='nfsdcltrack-ts'          # every file we write says so (the launcher in a comment)
DEFAULT_KERNEL_PROG=/sbin/nfsdcltrack

need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$ME: $1 needs an argument" >&2; exit 1; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) need "$@"; PREFIX=$2; shift 2;;
        --prefix=*) PREFIX=${1#*=}; shift;;
        --destdir) need "$@"; DESTDIR=$2; shift 2;;
        --destdir=*) DESTDIR=${1#*=}; shift;;
        --target) need "$@"; TARGET=$2; shift 2;;
        --target=*) TARGET=${1#*=}; shift;;
        --libdir) need "$@"; LIBDIR=$2; shift 2;;
        --libdir=*) LIBDIR=${1#*=}; shift;;
        --mandir) need "$@"; MANDIR=$2; shift 2;;
        --mandir=*) MANDIR=${1#*=}; shift;;
        --cld-target) need "$@"; CLD_TARGET=$2; shift 2;;
        --cld-target=*) CLD_TARGET=${1#*=}; shift;;
        --unitdir) need "$@"; UNITDIR=$2; shift 2;;
        --unitdir=*) UNITDIR=${1#*=}; shift;;
        --storagedir) need "$@"; STORAGEDIR=$2; shift 2;;
        --storagedir=*) STORAGEDIR=${1#*=}; shift;;
        --source) need "$@"; SRC=$2; shift 2;;
        --source=*) SRC=${1#*=}; shift;;
        --dist) need "$@"; DIST=$2; shift 2;;
        --dist=*) DIST=${1#*=}; shift;;
        --sysfs-param) need "$@"; SYSFS_PARAM=$2; SYSFS_GIVEN=1; shift 2;;
        --sysfs-param=*) SYSFS_PARAM=${1#*=}; SYSFS_GIVEN=1; shift;;
        --modprobe-dir) need "$@"; MODPROBE_DIR=$2; shift 2;;
        --modprobe-dir=*) MODPROBE_DIR=${1#*=}; shift;;
        --kernel) KERNEL=1; shift;;
        --kernel-persist) PERSIST=1; shift;;
        --no-selftest) SELFTEST=0; shift;;
        --uninstall) UNINSTALL=1; shift;;
        -h|--help) usage 0;;
        *) echo "$ME: unknown option: $1" >&2; usage 1 >&2;;
    esac
done
LIBDIR=${LIBDIR:-$PREFIX/lib/nfsdcltrack-ts}
MANDIR=${MANDIR:-$PREFIX/share/man}
TARGET=${TARGET:-$PREFIX/sbin/nfsdcltrack}
CLD_TARGET=${CLD_TARGET:-$PREFIX/sbin/nfsdcld-ts}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
DESTDIR=${DESTDIR%/}
for v in PREFIX LIBDIR MANDIR TARGET CLD_TARGET UNITDIR STORAGEDIR MODPROBE_DIR; do
    p=${!v}
    case "$p" in /*) ;; *) echo "$ME: $v must be an absolute path: $p" >&2; exit 1;; esac
    case "$p" in *[[:space:]]*) echo "$ME: $v must not contain white space: $p" >&2; exit 1;; esac
done
case "$DESTDIR" in ''|/*) ;; *) DESTDIR=$(pwd)/$DESTDIR;; esac
MANIFEST=$LIBDIR/install-manifest
# The running kernel is only touched by a real install, or when a test names
# the parameter file: a packaging build (DESTDIR) never reaches into /sys.
kernel_reachable() { [ -z "$DESTDIR" ] || [ "$SYSFS_GIVEN" = 1 ]; }

# ------------------------------------------------------------------ manifest
# One line per action, paths without DESTDIR:
#   dir PATH              a directory we created (removed again if empty)
#   file PATH             a file we wrote
#   saved PATH SAVED      PATH existed and was moved to SAVED
#   sysfs FILE PREVIOUS   we wrote FILE (a module parameter); it held PREVIOUS
#   modprobe PATH         we wrote this modprobe.d file
MAN_LINES=()
record() { MAN_LINES+=("$*"); }
write_manifest() {
    {
        echo "# $MARK install manifest v1: read by scripts/install.sh --uninstall; do not edit"
        echo "# target $TARGET"
        printf '%s\n' "${MAN_LINES[@]}"
    } > "$DESTDIR$MANIFEST.tmp"
    mv -f "$DESTDIR$MANIFEST.tmp" "$DESTDIR$MANIFEST"
}
# mkdir -p that records each directory it creates
mkdirs() {
    local d=$1 missing=() p
    while [ ! -d "$DESTDIR$d" ]; do missing=("$d" "${missing[@]}"); p=$(dirname "$d"); [ "$p" = "$d" ] && break; d=$p; done
    for p in "${missing[@]}"; do mkdir "$DESTDIR$p"; record dir "$p"; done
}
# put_file SRC DEST MODE: install a file, moving aside (once) a foreign file in its place
put_file() {
    local src=$1 dst=$2 mode=$3
    mkdirs "$(dirname "$dst")"
    if [ -e "$DESTDIR$dst" ] || [ -L "$DESTDIR$dst" ]; then
        if is_ours "$DESTDIR$dst"; then
            rm -f "$DESTDIR$dst"
        else
            [ ! -e "$DESTDIR$dst$SAVE_SUFFIX" ] || die "$DESTDIR$dst$SAVE_SUFFIX already exists; move it away first"
            mv "$DESTDIR$dst" "$DESTDIR$dst$SAVE_SUFFIX"
            record saved "$dst" "$dst$SAVE_SUFFIX"
            say "kept the previous $dst as $dst$SAVE_SUFFIX"
        fi
    fi
    install -m "$mode" "$src" "$DESTDIR$dst"
    record file "$dst"
}
is_ours() { [ -f "$1" ] && head -c 4096 "$1" 2>/dev/null | grep -aq -e "$MARK"; }

# ------------------------------------------------------------------ uninstall
do_uninstall() {   # $1 = quiet (reinstall)
    local quiet=${1:-} m=$DESTDIR$MANIFEST kind a b live target
    [ -f "$m" ] || die "nothing to uninstall: no manifest at $m (same --prefix/--libdir/--destdir as the install?)"
    target=$(sed -n 's/^# target //p' "$m" | head -1)
    lines=()
    while IFS= read -r l; do case "$l" in '#'*|'') ;; *) lines+=("$l");; esac; done < "$m"
    # kernel settings first, so the kernel never points at a removed file
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        read -r kind a b <<<"${lines[i]}"
        case "$kind" in
            modprobe) rm -f "$DESTDIR$a"; [ -n "$quiet" ] || say "removed $a";;
            sysfs)
                if [ -w "$a" ] && live=$(cat "$a" 2>/dev/null) && [ "$live" = "$target" ]; then
                    printf '%s' "${b:-$DEFAULT_KERNEL_PROG}" > "$a" && { [ -n "$quiet" ] || say "kernel cltrack_prog set back to ${b:-$DEFAULT_KERNEL_PROG}"; }
                fi;;
        esac
    done
    # a kernel pointed at TARGET some other way (modprobe.d at module load) goes back to its default
    if [ -z "$quiet" ] && kernel_reachable && [ -w "$SYSFS_PARAM" ] && live=$(cat "$SYSFS_PARAM" 2>/dev/null) && [ "$live" = "$target" ]; then
        printf '%s' "$DEFAULT_KERNEL_PROG" > "$SYSFS_PARAM" && say "kernel cltrack_prog set back to $DEFAULT_KERNEL_PROG"
    fi
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        read -r kind a b <<<"${lines[i]}"
        case "$kind" in
            file) rm -f "$DESTDIR$a";;
            saved) if [ -e "$DESTDIR$b" ] || [ -L "$DESTDIR$b" ]; then mv -f "$DESTDIR$b" "$DESTDIR$a"; [ -n "$quiet" ] || say "restored $a"; fi;;
        esac
    done
    rm -f "$m"
    # enabling was the administrator's, so is disabling: say so rather than leave it dangling silently
    if [ -z "$quiet" ]; then
        for w in "$DESTDIR"/etc/systemd/system/*.wants/"$UNIT_NAME"; do
            [ -L "$w" ] && warn "$w is left (the unit was enabled): run 'systemctl disable $UNIT_NAME' (and 'systemctl unmask nfsdcld.service' to go back to nfs-utils' nfsdcld)"
        done
    fi
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        read -r kind a b <<<"${lines[i]}"
        [ "$kind" = dir ] && rmdir "$DESTDIR$a" 2>/dev/null || true
    done
    [ -n "$quiet" ] || say "uninstalled $target"
}

if [ "$UNINSTALL" = 1 ]; then
    do_uninstall
    exit 0
fi

# ------------------------------------------------------------------ install
SRC=$(cd "$SRC" && pwd)
SRC_REAL=$(cd "$SRC" && pwd -P)
DIST=${DIST:-$SRC/dist}
if [ -d "$DIST" ]; then DIST=$(cd "$DIST" && pwd); DIST_REAL=$(cd "$DIST" && pwd -P); else DIST_REAL=$DIST; fi
[ -f "$DIST/cli.js" ] || die "$DIST/cli.js is missing: build first (npm ci, or node scripts/build.mjs)"
[ -f "$DIST/nfsdcltrack" ] || die "$DIST/nfsdcltrack (the launcher) is missing: build first (npm ci, or node scripts/build.mjs)"
if [ "$KERNEL" = 1 ] && [ -n "$DESTDIR" ] && [ "$SYSFS_GIVEN" = 0 ]; then
    echo "$ME: --kernel points the running kernel at the program: not with --destdir" >&2; exit 1
fi

# a reinstall first undoes the previous install (putting back what it replaced)
if [ -f "$DESTDIR$MANIFEST" ]; then
    say "replacing the previous install"
    do_uninstall quiet
fi

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/nfsdcltrack-install.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# Absolute paths into the checkout must not survive into the install.  A
# runtime binary inside node_modules (Bun's npm package) is copied along.
esc() { printf '%s' "$1" | sed -e 's/[][\.*^$|/]/\\&/g'; }
RUNTIMES=()
rewrite() {   # rewrite FILE in place: checkout paths -> installed paths
    local f=$1 r base
    for r in $(grep -aoE "($(esc "$SRC")|$(esc "$SRC_REAL"))/node_modules/[^\"' ;:)]+" "$f" | sort -u); do
        [ -f "$r" ] && [ -x "$r" ] || continue
        base=$(basename "$r")
        if [ ! -e "$STAGE/lib/runtime/$base" ]; then
            mkdir -p "$STAGE/lib/runtime"; cp "$(readlink -f "$r")" "$STAGE/lib/runtime/$base"; chmod 755 "$STAGE/lib/runtime/$base"
            RUNTIMES+=("$base")
        fi
        sed -i -e "s|$(esc "$r")|$LIBDIR/runtime/$base|g" "$f"
    done
    sed -i -e "s|$(esc "$DIST_REAL")/|$LIBDIR/|g" -e "s|$(esc "$DIST")/|$LIBDIR/|g" "$f"
}

mkdir -p "$STAGE/lib"
cp -R "$DIST/." "$STAGE/lib/"
rm -f "$STAGE/lib/install-manifest"
# interpreter lines of every executable, and the whole launcher
for f in "$STAGE"/lib/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    if [ "$(basename "$f")" = nfsdcltrack ] && grep -qI . "$f"; then
        rewrite "$f"
    elif head -c 2 "$f" | grep -q '#!'; then
        { head -1 "$f" > "$STAGE/shebang"; rewrite "$STAGE/shebang"; tail -n +2 "$f" | cat "$STAGE/shebang" - > "$f.new"; chmod --reference="$f" "$f.new"; mv "$f.new" "$f"; }
    fi
done
LAUNCHER=$STAGE/lib/nfsdcltrack
if grep -qI . "$LAUNCHER"; then
    # the kernel-facing copy must work from TARGET: requires relative to the
    # launcher's own directory become absolute paths into LIBDIR
    cp "$LAUNCHER" "$STAGE/target"
    sed -i -e "s|require(\(['\"]\)\./|require(\1$LIBDIR/|g" "$STAGE/target"
    # a marker line after the interpreter line, in the launcher's own comment syntax
    if head -1 "$STAGE/target" | grep -q '^#!'; then
        case "$(head -1 "$STAGE/target")" in
            *sh|*sh\ *) cmt='#';;
            *) cmt='//';;
        esac
        sed -i "1a $cmt $MARK launcher, installed by scripts/install.sh; the bundled program is in $LIBDIR" "$STAGE/target"
    fi
    if grep -qE '__dirname|import\.meta|\$0|dirname|require\((.)\.\.?/' "$STAGE/target"; then
        die "cannot make a stand-alone launcher from $DIST/nfsdcltrack (it finds files relative to itself): $(tr '\n' ' ' < "$STAGE/target")"
    fi
    # nothing the kernel runs may still lean on the checkout
    for f in "$STAGE/target" "$STAGE/lib/nfsdcltrack"; do
        ! grep -qaF -e "$SRC/" -e "$SRC_REAL/" "$f" || die "the launcher still refers to the checkout $SRC: the install would depend on it"
    done
    for f in "$STAGE"/lib/*; do
        [ -f "$f" ] || continue
        ! head -1 "$f" | grep -qaF -e "$SRC/" -e "$SRC_REAL/" || die "$(basename "$f") still names the checkout $SRC on its first line"
    done
    # the runtime is the line's last word (#!/abs/bun, #!LIBDIR/nocaps VAR=... /abs/bun, or #!/usr/bin/env -S VAR=... /abs/bun)
    RT=$(head -1 "$STAGE/target" | sed 's/^#!//' | awk '{print $NF}')
    case "$RT" in
        /*) ;;
        *) die "the launcher's interpreter is not an absolute path: '$RT' (the kernel runs it with no PATH)";;
    esac
    case "$RT" in "$LIBDIR"/*) ;; *) [ -x "$RT" ] || warn "the launcher's runtime $RT is not executable on this machine";; esac
else
    cp "$LAUNCHER" "$STAGE/target"   # a compiled launcher: as is
fi

# The daemon's launcher (dist/nfsdcld: '#!/abs/node' + require('./nfsdcld.js')),
# made stand-alone like the upcall's: the copy in LIBDIR keeps its relative
# require, the one at CLD_TARGET requires LIBDIR/nfsdcld.js by absolute path.
CLD=0
if [ -f "$DIST/nfsdcld" ] && [ -f "$DIST/nfsdcld.js" ]; then
    CLD=1
    [ -f "$DIST/admin.js" ] || die "$DIST/admin.js is missing (the daemon's first-start import needs it): build again"
    sed -e "s|require(\(['\"]\)\./|require(\1$LIBDIR/|g" "$STAGE/lib/nfsdcld" > "$STAGE/cld-target"
    head -1 "$STAGE/cld-target" | grep -q '^#!' || die "$DIST/nfsdcld has no interpreter line"
    sed -i "1a // $MARK daemon launcher, installed by scripts/install.sh; the bundled program is in $LIBDIR" "$STAGE/cld-target"
    if grep -qE '__dirname|import\.meta|\$0|dirname|require\((.)\.\.?/' "$STAGE/cld-target"; then
        die "cannot make a stand-alone launcher from $DIST/nfsdcld (it finds files relative to itself): $(tr '\n' ' ' < "$STAGE/cld-target")"
    fi
    ! grep -qaF -e "$SRC/" -e "$SRC_REAL/" "$STAGE/cld-target" || die "the daemon's launcher still refers to the checkout $SRC"
    RT=$(head -1 "$STAGE/cld-target" | sed 's/^#!//' | awk '{print $NF}')
    case "$RT" in /*) ;; *) die "the daemon launcher's interpreter is not an absolute path: '$RT'";; esac
    case "$RT" in "$LIBDIR"/*) ;; *) [ -x "$RT" ] || warn "the daemon launcher's runtime $RT is not executable on this machine";; esac
    [ -f "$SRC/systemd/$UNIT_NAME" ] || die "$SRC/systemd/$UNIT_NAME is missing"
    # the unit names the installed launcher and the store it must wait for
    # (and the one directory, besides rpc_pipefs, its sandbox lets it write)
    sed -e "s|^ExecStart=.*|ExecStart=$CLD_TARGET|" -e "s|^RequiresMountsFor=.*|RequiresMountsFor=$STORAGEDIR|" \
        -e "s|^ExecStartPre=+/bin/mkdir -p -m 0700 .*|ExecStartPre=+/bin/mkdir -p -m 0700 $STORAGEDIR|" \
        -e "s|^ReadWritePaths=[^ ]* |ReadWritePaths=$STORAGEDIR |" \
        "$SRC/systemd/$UNIT_NAME" > "$STAGE/unit"
    grep -qx "ExecStart=$CLD_TARGET" "$STAGE/unit" || die "$SRC/systemd/$UNIT_NAME has no ExecStart= line"
else
    warn "$DIST/nfsdcld is not built: the cld daemon, its man page and unit are not installed"
fi

# -------- place the files
mkdirs "$LIBDIR"
for f in "$STAGE"/lib/*; do
    [ -f "$f" ] || continue
    put_file "$f" "$LIBDIR/$(basename "$f")" "$( [ -x "$f" ] && echo 755 || echo 644 )"
done
if [ -d "$STAGE/lib/runtime" ]; then
    mkdirs "$LIBDIR/runtime"
    for f in "$STAGE"/lib/runtime/*; do put_file "$f" "$LIBDIR/runtime/$(basename "$f")" 755; done
fi
put_file "$STAGE/target" "$TARGET" 755
if [ -f "$SRC/man/nfsdcltrack.8" ]; then
    put_file "$SRC/man/nfsdcltrack.8" "$MANDIR/man8/nfsdcltrack.8" 644
else
    warn "$SRC/man/nfsdcltrack.8 is missing: no man page installed"
fi
if [ "$CLD" = 1 ]; then
    put_file "$STAGE/cld-target" "$CLD_TARGET" 755
    if [ -f "$SRC/man/nfsdcld.8" ]; then
        put_file "$SRC/man/nfsdcld.8" "$MANDIR/man8/nfsdcld-ts.8" 644
    else
        warn "$SRC/man/nfsdcld.8 is missing: no man page for the daemon installed"
    fi
    put_file "$STAGE/unit" "$UNITDIR/$UNIT_NAME" 644
fi
write_manifest
say "installed $DESTDIR$TARGET (program in $DESTDIR$LIBDIR)"
if [ "$CLD" = 1 ]; then
    say "installed the cld daemon $DESTDIR$CLD_TARGET and $DESTDIR$UNITDIR/$UNIT_NAME (not enabled; to use it:"
    say "  systemctl daemon-reload; systemctl mask --now nfsdcld.service; systemctl enable --now $UNIT_NAME)"
fi

# -------- self-test: the installed program, with the kernel's empty environment
if [ -z "$DESTDIR" ] && [ "$SELFTEST" = 1 ]; then
    st=$(mktemp -d "${TMPDIR:-/tmp}/nfsdcltrack-selftest.XXXXXX")
    ok=1
    env -i "$TARGET" -f -s "$st/store" init >"$st/out" 2>&1 || ok=0
    env -i NFSDCLTRACK_CLIENT_HAS_SESSION=Y "$TARGET" -f -s "$st/store" create 73656c6674657374 >>"$st/out" 2>&1 || ok=0
    env -i NFSDCLTRACK_CLIENT_HAS_SESSION=Y "$TARGET" -f -s "$st/store" check 73656c6674657374 >>"$st/out" 2>&1 || ok=0
    if env -i "$TARGET" -f -s "$st/store" check 00 >>"$st/out" 2>&1; then ok=0; fi
    if [ "$ok" = 0 ]; then
        cat "$st/out" >&2; rm -rf "$st"
        echo "$ME: error: the installed $TARGET failed its self-test (init/create/check with no PATH); rolling back" >&2
        do_uninstall quiet
        exit 2
    fi
    rm -rf "$st"
    say "self-test passed (init, create, check with the kernel's empty environment)"
    # the daemon's launcher, runtime and bundle load (-h exits 0 before touching anything)
    if [ "$CLD" = 1 ] && ! env -i "$CLD_TARGET" -h >/dev/null 2>"$STAGE/cld.out"; then
        cat "$STAGE/cld.out" >&2
        echo "$ME: error: the installed $CLD_TARGET failed to start (-h); rolling back" >&2
        do_uninstall quiet
        exit 2
    fi
fi

# -------- the kernel
if [ "$PERSIST" = 1 ]; then
    mkdirs "$MODPROBE_DIR"
    mp=$MODPROBE_DIR/$MODPROBE_NAME
    { echo "# $MARK: NFSv4 client tracking upcall program for nfsd (the kernel's cltrack_prog)."
      echo "# Written by scripts/install.sh --kernel-persist; removed by scripts/install.sh --uninstall."
      echo "options nfsd cltrack_prog=$TARGET"; } > "$STAGE/modprobe.conf"
    put_file "$STAGE/modprobe.conf" "$mp" 644
    record modprobe "$mp"
    write_manifest
    say "wrote $DESTDIR$mp: nfsd will run $TARGET when it is next loaded"
    others=$(grep -lsE '^[[:space:]]*options[[:space:]]+nfsd[[:space:]].*cltrack_prog=' \
        "$DESTDIR"/etc/modprobe.d/*.conf "$DESTDIR"/run/modprobe.d/*.conf "$DESTDIR"/usr/lib/modprobe.d/*.conf "$DESTDIR"/lib/modprobe.d/*.conf 2>/dev/null \
        | grep -v "/$MODPROBE_NAME\$" || true)
    [ -z "$others" ] || warn "other modprobe.d files also set cltrack_prog (the one modprobe reads last wins): $others"
fi
if [ "$KERNEL" = 1 ]; then
    if [ -e "$SYSFS_PARAM" ]; then
        prev=$(cat "$SYSFS_PARAM")
        printf '%s' "$TARGET" > "$SYSFS_PARAM" || die "cannot write $SYSFS_PARAM"
        record sysfs "$SYSFS_PARAM" "${prev:-$DEFAULT_KERNEL_PROG}"
        write_manifest
        say "the running kernel now runs $TARGET (cltrack_prog was ${prev:-empty})"
    elif [ -d "$(dirname "$(dirname "$SYSFS_PARAM")")" ]; then
        warn "this nfsd has no cltrack_prog parameter: its kernel was built without the nfsdcltrack upcall (CONFIG_NFSD_LEGACY_CLIENT_TRACKING)"
    else
        warn "the nfsd module is not loaded, so --kernel changed nothing now; --kernel-persist makes the next load use $TARGET"
    fi
fi
exit 0
