// Administrator commands (list, status, verify, compact, import, export):
// extra commands of ours, with ordinary exit statuses (0 ok, 1 a problem found
// or the action refused, 2 a usage error). A bundle of its own (dist/admin.js),
// loaded only when one of them is asked for; SQLite (sql.js) is loaded only by
// import and export. Documented in docs/admin.md.
import * as fs from 'fs';
import minimist from 'minimist';
import { loadTrackConfig } from '../config';
import { guardFor, mustExist, refusal } from '../ha';
import { DEFAULT_LOCK } from '../store/lock';
import { ensureStorageDir, Store, type StoreLog } from '../store/store';
import type { Logger } from '../log';
import { formatStatus, list, status } from './inspect';
import { exportDb, importDb, Refused } from './migrate';
import { LegacyError, readLegacyDb } from './sqlite';
import { analyzeStore, errorsOf, formatFinding, repairStore } from './verify';
import { OK, PROBLEM, resolveStoragedir, stdio, USAGE_ERROR, UsageError, type Out } from './util';

export { importAtDaemonStart, importIfLegacy } from './migrate';

export interface AdminContext {
  env: Record<string, string | undefined>;
  log: Logger;
  defaultStoragedir: string;
  /** Where output goes (tests); default stdout/stderr. */
  out?: Out;
}

const COMMON = `Common options:
  -s, --storagedir DIR   the store (default: [nfsdcltrack] storagedir in nfs.conf,
                         else /var/lib/nfs/nfsdcltrack)
  -f, --foreground       log to stderr rather than syslog
  -d, --debug            debug logging
  -h, --help             this help
Exit status: 0 ok, 1 a problem was found or the action refused, 2 usage error.
`;

const HELP: Record<string, string> = {
  list: `Usage: nfsdcltrack [options] list [--json]

One line per client recorded in a live epoch, sorted by id: the id in hex,
its protocol version (4.0, or 4.1+ for a client with sessions), the record's
time (ISO-8601 UTC), the cld epochs it is recorded in (newest first; during
grace a client of the recovery epoch may reclaim), the first 8 hex digits of
its princhash in each ("-": none), and the id as text where it is printable
("-" when not). Reads without the lock: safe while the kernel's upcalls write.

  --json   one JSON document: {"storagedir", "store_id", "healthy", "problems", "count",
           "epochs": {"current", "recovery"}, "clients": [{"id", "name",
           "time", "epoch" (the time in seconds), "version", "cld_epochs":
           [{"epoch", "princhash" (64 hex digits or null)}], "may_reclaim"}]}

`,
  status: `Usage: nfsdcltrack [options] status [--boot-time T] [--json]

Counts (clients, v4.0 and v4.1+, records older than the boot time and clients
still expected to reclaim), the cld epochs (current, recovery, and whether a
grace period is in progress), snapshot and journal sizes, the lock's state,
the store's format version, the filesystem, the store's id, its position
(gen and journal entry) against how far this node served it, the node that
served it last (docs/ha.md), and warnings (a volatile filesystem such as
tmpfs, a damaged store, leftover temporary files, a journal past its
compaction threshold, a store that has moved from another node). Exit 1 when
the store is damaged, or when this node's front ends would refuse it (the
pinned store-id, storage-mountpoint, a rollback).

  --boot-time T   epoch seconds of the server boot to count against
                  (default: this machine's boot time, from /proc/stat)
  --json          the same as one JSON document

`,
  verify: `Usage: nfsdcltrack [options] verify [--repair]

Checks every line of the store: checksums, header counts, sort order, the
time index, journal gen and seq continuity, the chain of previous states
(epochs and princhashes included), the epochs of grace entries (valid, the
current one never going back) and of records (none past the current one).
Prints one line per finding, "FILE:LINE: what"; exit 0 when the store is
sound, 1 when not.

  --repair   under the writers' lock, salvage every record the store can
             prove into a fresh snapshot, keep the damaged files as
             FILE.damaged-<time> (never deleted), and list the clients lost

`,
  compact: `Usage: nfsdcltrack [options] compact

Folds the journal into a new snapshot now, under the lock, crash-safe like
automatic compaction. Refused (exit 1) on a damaged store: see verify --repair.

`,
  import: `Usage: nfsdcltrack [options] import [--merge] PATH

Imports the client records of nfs-utils: PATH is an nfsdcltrack main.sqlite
(schema 1 or 2) or its directory, or an nfsdcld main.sqlite (schema 3 or 4:
the clients of its current and recovery epochs, with their princhashes; the
store takes nfsdcld's epochs, so that a grace period in progress goes on).
All records or none; importing the same records again changes nothing. A
store that already holds other records is left alone unless --merge.

  --merge   add the imported records to the store's own, in the store's
            epochs (per client, the newer record gives time and version)

`,
  export: `Usage: nfsdcltrack [options] export [--nfsdcld] [--force] PATH

Writes the store's live records as an nfsdcltrack schema-2 main.sqlite that
the C nfsdcltrack (and nfsdcld's first-start import) reads as is. PATH is a
file or a directory (then PATH/main.sqlite). Written to a temporary file and
renamed.

  --nfsdcld  write an nfsdcld schema-4 main.sqlite instead: the store's
             epochs and a table per live epoch, princhashes included, that
             nfsdcld serves as is (a grace period in progress goes on)
  --force    replace an existing file (a -journal/-wal file beside it is
             moved aside, never deleted)

`,
};

const LONG = ['storagedir', 'foreground', 'debug', 'help', 'json', 'boot-time', 'repair', 'merge', 'force', 'nfsdcld'];
const BOOLEAN = ['f', 'd', 'h', 'foreground', 'debug', 'help', 'json', 'repair', 'merge', 'force', 'nfsdcld'];
const ALLOWED: Record<string, string[]> = {
  list: ['json'],
  status: ['json', 'boot-time'],
  verify: ['repair'],
  compact: [],
  import: ['merge'],
  export: ['force', 'nfsdcld'],
};

/** GNU getopt_long accepts any unambiguous prefix of a long option. */
function expandLong(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)(=.*)?$/.exec(a);
    if (!m || LONG.includes(m[1])) {
      out.push(a);
      continue;
    }
    const hits = LONG.filter((l) => l.startsWith(m[1]));
    if (hits.length !== 1) throw new UsageError(hits.length === 0 ? `unknown option '${a}'` : `option '${a}' is ambiguous (${hits.map((h) => '--' + h).join(', ')})`);
    out.push(`--${hits[0]}${m[2] ?? ''}`);
  }
  return out;
}

interface Parsed {
  cmd: string;
  operands: string[];
  storagedir?: string;
  opts: minimist.ParsedArgs;
}

function parse(argv: string[]): Parsed {
  const bad: string[] = [];
  const expanded = expandLong(argv);
  const opts = minimist(expanded, {
    string: ['s', 'storagedir', 'boot-time'],
    boolean: BOOLEAN,
    alias: { s: 'storagedir', f: 'foreground', d: 'debug', h: 'help' },
    unknown: (a) => {
      if (a.startsWith('-') && a !== '-') {
        bad.push(a);
        return false;
      }
      return true;
    },
  });
  const [cmd, ...operands] = opts._.map(String);
  if (bad.length > 0) throw new UsageError(`unknown option '${bad[0]}'${cmd && HELP[cmd] ? ` for ${cmd}` : ''}`);
  for (const k of ['storagedir', 'boot-time']) {
    const v = opts[k];
    if (Array.isArray(v)) throw new UsageError(`--${k} given more than once`);
    const given = expanded.some((a) => a === `--${k}` || a.startsWith(`--${k}=`) || (k === 'storagedir' && a.startsWith('-s')));
    if (given && (v === '' || v === undefined)) {
      throw new UsageError(`option --${k} requires an argument`);
    }
  }
  if (cmd && ALLOWED[cmd]) {
    const extra = LONG.filter((l) => !['storagedir', 'foreground', 'debug', 'help'].includes(l) && !ALLOWED[cmd].includes(l) && (opts[l] === true || (typeof opts[l] === 'string' && l in opts)));
    if (extra.length > 0) throw new UsageError(`option --${extra[0]} does not apply to ${cmd}`);
  }
  return { cmd: cmd ?? '', operands, storagedir: opts.storagedir as string | undefined, opts };
}

function storeLog(log: Logger): StoreLog {
  return { warn: (m) => log.warn(m), error: (m) => log.debug(m), debug: (m) => log.debug(m) };
}

export async function runAdmin(argv: string[], ctx: AdminContext): Promise<number> {
  const io = ctx.out ?? stdio;
  let p: Parsed;
  try {
    p = parse(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const cmd = argv.find((a) => HELP[a]);
    io.err(`nfsdcltrack: ${e.message}\n`);
    io.err((cmd ? HELP[cmd] : '') + `Run 'nfsdcltrack ${cmd ?? 'COMMAND'} --help' for help.\n`);
    return USAGE_ERROR;
  }
  const help = HELP[p.cmd];
  if (p.opts.help) {
    io.out(help + COMMON);
    return OK;
  }
  // Admin commands talk to a person: messages go to stderr, not to syslog.
  ctx.log.foreground = true;
  ctx.log.debugEnabled = ctx.log.debugEnabled || !!p.opts.debug;
  const usage = (msg: string): number => {
    io.err(`nfsdcltrack ${p.cmd}: ${msg}\n${help}`);
    return USAGE_ERROR;
  };
  const dir = resolveStoragedir(p.storagedir, ctx.env, (m) => ctx.log.warn(m), ctx.defaultStoragedir);
  const lock = { waitMs: Math.max(DEFAULT_LOCK.waitMs, 30_000) };
  const store = new Store({ dir, log: storeLog(ctx.log), lock });
  // Writes honour the front ends' pin and mount point (docs/ha.md): the
  // administrator's compact or import must not make or change a store that
  // the node would refuse to serve. Reads (list, status, export) do not.
  const ha = loadTrackConfig(ctx.env, () => undefined);
  const writer = mustExist(ha) ? new Store({ dir, log: storeLog(ctx.log), lock, storeId: ha.storeId, guard: guardFor(dir, ha) }) : store;
  const refused = (): string | null => refusal(writer, ha);
  const fail = (msg: string): number => {
    io.err(`nfsdcltrack ${p.cmd}: ${msg}\n`);
    return PROBLEM;
  };
  const dirMissing = (): boolean => {
    try {
      return !fs.statSync(dir).isDirectory();
    } catch {
      return true;
    }
  };
  try {
    switch (p.cmd) {
      case 'list': {
        if (p.operands.length > 0) return usage(`unexpected argument '${p.operands[0]}'`);
        if (dirMissing()) return fail(`${dir}: no such directory`);
        const r = list(store, !!p.opts.json);
        io.out(r.text);
        for (const w of r.warnings) io.err(`nfsdcltrack list: warning: ${w}\n`);
        return r.ok ? OK : PROBLEM;
      }
      case 'status': {
        if (p.operands.length > 0) return usage(`unexpected argument '${p.operands[0]}'`);
        let boot: number | null = null;
        if (typeof p.opts['boot-time'] === 'string') {
          if (!/^\d{1,11}$/.test(p.opts['boot-time'])) return usage(`--boot-time wants epoch seconds, not '${p.opts['boot-time']}'`);
          boot = Number(p.opts['boot-time']);
        }
        if (dirMissing()) return fail(`${dir}: no such directory`);
        const defaultDir = resolveStoragedir(undefined, ctx.env, () => undefined, ctx.defaultStoragedir);
        const r = status(store, ctx.env, boot, defaultDir);
        io.out(p.opts.json ? JSON.stringify(r, null, 2) + '\n' : formatStatus(r));
        return r.healthy && r.ha.refused.length === 0 ? OK : PROBLEM;
      }
      case 'verify': {
        if (p.operands.length > 0) return usage(`unexpected argument '${p.operands[0]}'`);
        if (dirMissing()) return fail(`${dir}: no such directory`);
        const a = analyzeStore(dir);
        if (a.empty) {
          io.out(`${dir}: no store files yet (init creates them): nothing to verify\n`);
          return OK;
        }
        for (const f of a.findings) io.out(formatFinding(f) + '\n');
        const errors = errorsOf(a);
        // The store's own judgement, as the kernel's commands see it.
        const view = store.read();
        const healthy = view.healthy;
        const problems = view.problems;
        view.close();
        if (errors.length === 0 && healthy) {
          io.out(`${dir}: sound\n`);
          if (!p.opts.repair) return OK;
          io.out('nothing to repair\n');
          return OK;
        }
        if (!healthy && errors.length === 0) io.out(`${dir}: the store reports: ${problems.join('; ')}\n`);
        if (!p.opts.repair) {
          io.out(`${dir}: ${errors.length} error(s)${healthy ? '' : '; clients the store cannot prove are refused'}; 'nfsdcltrack verify --repair' salvages what it can prove\n`);
          return PROBLEM;
        }
        const why = refused();
        if (why !== null) return fail(why);
        const r = await repairStore(writer, a);
        io.out(`repaired: ${r.salvaged} record(s) kept in a new snapshot\n`);
        if (r.keptAside.length > 0) io.out(`kept aside: ${r.keptAside.join(', ')}\n`);
        if (r.lost.length + r.lostDamaged.length === 0) io.out('lost: none\n');
        else {
          io.out(`lost: ${r.lost.length + r.lostDamaged.length} client(s) whose record could not be proven (they may no longer reclaim):\n`);
          for (const id of r.lost) io.out(`  ${id === '' ? '(empty id)' : id}\n`);
          for (const k of r.lostDamaged) io.out(`  ${k === '' ? '(empty id)' : k} (read from a damaged line: may itself be damaged)\n`);
        }
        const after = analyzeStore(dir);
        const left = errorsOf(after);
        for (const f of left) io.out(`after repair: ${formatFinding(f)}\n`);
        return left.length === 0 ? OK : PROBLEM;
      }
      case 'compact': {
        if (p.operands.length > 0) return usage(`unexpected argument '${p.operands[0]}'`);
        if (dirMissing()) return fail(`${dir}: no such directory`);
        const why = refused();
        if (why !== null) return fail(why);
        const before = store.read();
        const entries = before.journal?.parsed.entries.length ?? 0;
        before.close();
        if (!(await writer.compact())) return fail(`the store in ${dir} is damaged: compaction would lose what it cannot prove; run 'nfsdcltrack verify --repair'`);
        const v = store.read();
        io.out(`compacted ${dir}: ${entries} journal entr${entries === 1 ? 'y' : 'ies'} folded into snapshot gen ${v.gen} (${v.snapshot?.header?.records ?? 0} record(s))\n`);
        v.close();
        return OK;
      }
      case 'import': {
        if (p.operands.length !== 1) return usage(p.operands.length === 0 ? 'PATH is missing' : `unexpected argument '${p.operands[1]}'`);
        const t0 = Date.now();
        const src = await readLegacyDb(p.operands[0]);
        for (const s of src.skipped) io.err(`nfsdcltrack import: warning: ${s}\n`);
        const why = refused();
        if (why !== null) return fail(why);
        ensureStorageDir(dir);
        const r = await importDb(writer, p.operands[0], !!p.opts.merge, src);
        const what = src.epochs ? `nfsdcld schema ${src.schema}, epochs current ${src.epochs.current}, recovery ${src.epochs.recovery}` : `${src.kind} schema ${src.schema}`;
        const epochs = `the store's epochs: current ${r.epochs.current}, recovery ${r.epochs.recovery}`;
        if (r.unchanged) io.out(`${dir} already holds the ${r.total} client(s) of ${src.file} (${what}): nothing to do\n`);
        else io.out(`imported ${src.records.length} client(s) from ${src.file} (${what}) into ${dir}: ${r.changed} added or changed, ${r.total} in the store, ${epochs} (${Date.now() - t0} ms)\n`);
        return OK;
      }
      case 'export': {
        if (p.operands.length !== 1) return usage(p.operands.length === 0 ? 'PATH is missing' : `unexpected argument '${p.operands[1]}'`);
        if (dirMissing()) return fail(`${dir}: no such directory`);
        const cld = !!p.opts.nfsdcld;
        const r = await exportDb(store, p.operands[0], !!p.opts.force, cld ? 'nfsdcld' : 'nfsdcltrack');
        for (const m of r.movedAside) io.err(`nfsdcltrack export: moved ${m.replace(/\.stale-[^.]*$/, '')} aside to ${m}\n`);
        const what = cld ? `nfsdcld schema 4, epochs current ${r.epochs.current}, recovery ${r.epochs.recovery}` : 'nfsdcltrack schema 2';
        io.out(`exported ${r.records} client(s) to ${r.file} (${what})\n`);
        return OK;
      }
      default:
        io.err(`nfsdcltrack: unknown admin command '${p.cmd}'\n`);
        return USAGE_ERROR;
    }
  } catch (e) {
    if (e instanceof Refused || e instanceof LegacyError) return fail(e.message);
    return fail((e as Error).message ?? String(e));
  }
}
