// The documentation against the code: both man pages (nfsdcltrack.8, and
// nfsdcld.8 for the daemon) render without a single groff warning and name
// every command, option, setting, environment variable, exit status, crash
// point and store file the programs know; every store line quoted in the docs
// carries a valid checksum; the awk one-liners of docs/format.md and the man
// page work on real stores, one made by the upcall and one by the daemon
// (epochs and all); the demo runs.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { KERNEL_COMMANDS } from '../lib/commands';
import * as errno from '../lib/errno';
import { unseal, FORMAT_VERSION } from '../lib/store/format';
import { crcHex } from '../lib/crc32';
import { Cmd, encodeMessage } from '../lib/cld/codec';
import { CldDriver } from './lib/cld-driver';
import { DEFAULT_COMPACT_BYTES, JOURNAL_NAME, SNAPSHOT_NAME, SNAPSHOT_TMP_NAME } from '../lib/store/store';
import { DEFAULT_LOCK, LOCK_NAME } from '../lib/store/lock';
import { ensureBuilt } from './lib/built';

const ROOT = path.resolve(__dirname, '..');
const MAN = path.join(ROOT, 'man', 'nfsdcltrack.8');
const CLD_MAN = path.join(ROOT, 'man', 'nfsdcld.8');
const BIN = path.join(ROOT, 'dist', 'nfsdcltrack');
const read = (rel: string): string => fs.readFileSync(path.join(ROOT, rel), 'utf8');

function which(prog: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, prog);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}


/**
 * The man page's text with roff escapes resolved the way a reader sees them
 * (no groff needed): fonts dropped, \- \(aq \e \(dq \~ \& turned into text.
 * Request lines keep their arguments (".BR list | status" -> "list | status").
 */
function manText(src: string): string {
  return src
    .split('\n')
    .filter((l) => !l.startsWith('.\\"'))
    .map((l) => (l.startsWith('.') ? l.replace(/^\.[A-Za-z]+\s*/, '').replace(/"/g, '').replace(/ {2,}/g, ' ') : l))
    .join('\n')
    .replace(/\\f[BIRP]/g, '')
    .replace(/\\-/g, '-')
    .replace(/\\\(aq/g, "'")
    .replace(/\\\(dq/g, '"')
    .replace(/\\\(lq|\\\(rq/g, '"')
    .replace(/\\\(bu/g, '*')
    .replace(/\\e/g, '\\')
    .replace(/\\~/g, ' ')
    .replace(/\\&/g, '')
    .replace(/\\c/g, '');
}

/** The text of one .SH section of the man page source (resolved). */
function manSection(src: string, name: string): string {
  const re = new RegExp(`^\\.SH "?${name}"?$`, 'm');
  const m = re.exec(src);
  if (!m) return '';
  const rest = src.slice(m.index + m[0].length);
  const end = rest.search(/^\.SH /m);
  return manText(end < 0 ? rest : rest.slice(0, end));
}

/** Every NFSDCLTRACK_* name the programs' sources mention. */
function envVarsInCode(): string[] {
  const names = new Set<string>();
  const walk = (p: string): void => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    else if (p.endsWith('.ts')) {
      const text = fs.readFileSync(p, 'utf8');
      for (const m of text.matchAll(/NFSDCLTRACK_[A-Z][A-Z_]*[A-Z]/g)) {
        // A constant of that name (export const NFSDCLTRACK_DIR = ...) is not a variable read from the environment.
        if (!new RegExp(`const ${m[0]}\\b`).test(text)) names.add(m[0]);
      }
    }
  };
  walk(path.join(ROOT, 'cli.ts'));
  walk(path.join(ROOT, 'nfsdcld.ts'));
  walk(path.join(ROOT, 'lib'));
  return [...names].sort();
}

/** The crash points the write path actually calls. */
function crashPointsInCode(): string[] {
  const names = new Set<string>();
  const walk = (p: string): void => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    else if (p.endsWith('.ts')) for (const m of fs.readFileSync(p, 'utf8').matchAll(/crash(?:Point|Armed)\('([a-z-]+)'\)/g)) names.add(m[1]);
  };
  walk(path.join(ROOT, 'lib'));
  return [...names].sort();
}

/** cli.ts's administrator commands (read from its source: importing cli.ts runs the program). */
function adminCommands(): string[] {
  const m = /ADMIN_COMMANDS\s*=\s*new Set\(\[([^\]]*)\]\)/.exec(read('cli.ts'));
  return m ? [...m[1].matchAll(/'([a-z]+)'/g)].map((x) => x[1]) : [];
}

const manSrc = fs.readFileSync(MAN, 'utf8');
const man = manText(manSrc);
const cldSrc = fs.readFileSync(CLD_MAN, 'utf8');

for (const page of [MAN, CLD_MAN]) t.test(`${path.basename(page)} renders without a groff warning`, async (t) => {
  const MAN = page;
  const groff = which('groff');
  if (!groff) {
    t.comment('########################################################################');
    t.comment('# groff is not installed: the man page was NOT rendered (apt-get install groff man-db)');
    t.comment('########################################################################');
    t.skip('groff missing: man page rendering NOT checked', () => {});
    return;
  }
  const r = spawnSync(groff, ['-ww', '-man', '-z', MAN], { encoding: 'utf8' });
  t.equal(r.status, 0, 'groff exits 0');
  t.equal(r.stderr, '', 'groff -ww -man -z: zero warnings');
  const tty = spawnSync(groff, ['-ww', '-man', '-Tutf8', '-rLL=80n', MAN], { encoding: 'utf8' });
  t.equal(tty.stderr, '', 'groff -Tutf8 at 80 columns: zero warnings');
  t.match(tty.stdout.replace(/.\x08/g, ''), /^NAME$/m, 'renders text (overstrike bold removed)');
  const mandb = which('man');
  if (mandb) {
    const m = spawnSync(mandb, ['--warnings', '-l', MAN], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
    t.equal(m.status, 0, 'man -l exits 0');
    t.equal(m.stderr, '', 'man --warnings -l: zero warnings');
  } else {
    t.comment('man-db is not installed: man -l not tried (groff was)');
  }
});

t.test('nfsdcld.8 has every section, option, setting and behaviour', async (t) => {
  for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'THE PIPE', 'PROTOCOL', 'FIRST START', 'DAMAGED STORES', 'SIGNALS', 'FILES AND PROCESS', 'ENVIRONMENT', 'CONFIGURATION', 'EXIT STATUS', 'FILES', 'SEE ALSO']) {
    t.match(cldSrc, new RegExp(`^\\.SH "?${s}"?$`, 'm'), s);
  }
  // The daemon's own option table (nfsdcld.ts), every entry named in OPTIONS.
  const opts = [...fs.readFileSync(path.join(ROOT, 'nfsdcld.ts'), 'utf8').matchAll(/\{ name: '([a-z]+)', short: '([a-zA-Z])'/g)];
  t.equal(opts.length, 5, 'nfsdcld.ts has its five options');
  const options = manSection(cldSrc, 'OPTIONS');
  for (const [, long, short] of opts) {
    for (const o of [`-${short}`, `--${long}`]) t.match(options, new RegExp(`(^|[ ,])${o.replace(/-/g, '\\-')}\\b`, 'm'), `option ${o}`);
  }
  const conf = manSection(cldSrc, 'CONFIGURATION');
  for (const k of ['[nfsdcld] storagedir', '[nfsdcld] debug', '[general] pipefs-directory', '[nfsdcltrack]', '/var/lib/nfs/nfsdcltrack']) t.ok(conf.includes(k), `configuration: ${k}`);
  t.ok(manSection(cldSrc, 'ENVIRONMENT').includes('NFSDCLTRACK_CONF_FILE'), 'the NFSDCLTRACK_CONF_FILE test hook');
  const sig = manSection(cldSrc, 'SIGNALS');
  for (const k of ['SIGTERM', 'SIGINT', 'status 0']) t.ok(sig.includes(k), `signals: ${k}`);
  const pipe = manSection(cldSrc, 'THE PIPE');
  for (const k of ['/nfsd/cld', 'new pipe']) t.ok(pipe.includes(k), `pipe: ${k}`);
  t.match(manSection(cldSrc, 'DESCRIPTION'), /about a\s+second/, 'the kernel waits about a second: start before nfsd');
  const first = manSection(cldSrc, 'FIRST START');
  for (const k of ['main.sqlite', '/var/lib/nfs/nfsdcld', 'current and recovery epochs', 'hash:', 'once', 'recovery directory']) t.ok(first.includes(k), `first start: ${k}`);
  t.match(manSection(cldSrc, 'DAMAGED STORES'), /only the records the store\s+proves/, 'damaged store: only proven records at GraceStart');
  t.match(manSection(cldSrc, 'DAMAGED STORES'), /logged once/, 'damage logged once');
  t.match(manSection(cldSrc, 'PROTOCOL'), /one\s+fdatasync[\s\S]*answered after it/, 'group commit');
  t.match(manSection(cldSrc, 'FILES AND PROCESS'), /holds no file of the storage directory open between upcalls/, 'no file held open');
  t.match(manSection(cldSrc, 'FILES AND PROCESS'), /working directory at\s+\//, 'working directory /');
  const exit = manSection(cldSrc, 'EXIT STATUS');
  for (const st of [0, 1]) t.match(exit, new RegExp(`^${st}$`, 'm'), `exit status ${st}`);
  t.ok(manSection(cldSrc, 'FILES').includes('/var/lib/nfs/rpc_pipefs/nfsd/cld'), 'FILES: the pipe');
  const see = manSection(cldSrc, 'SEE ALSO');
  t.ok(see.includes('nfsdcltrack (8)') || see.includes('nfsdcltrack(8)') || /nfsdcltrack\s*\(8\)/.test(see), 'SEE ALSO nfsdcltrack(8)');
  t.match(see, /nfs-utils'\s+nfsdcld/, "SEE ALSO nfs-utils' nfsdcld");
  t.match(manSection(cldSrc, 'FILES'), /ident\s+nfsdcld/, 'syslog ident nfsdcld');
  // The ident the code logs with.
  t.match(fs.readFileSync(path.join(ROOT, 'nfsdcld.ts'), 'utf8'), /const PROG = 'nfsdcld'/, 'nfsdcld.ts logs as nfsdcld');
});

t.test('the man page has every section', async (t) => {
  for (const s of [
    'NAME',
    'SYNOPSIS',
    'DESCRIPTION',
    'OPTIONS',
    'COMMANDS',
    'ENVIRONMENT',
    'CONFIGURATION',
    'EXIT STATUS',
    'FILES',
    'STORE FORMAT',
    'CRASH RECOVERY AND DURABILITY',
    'CONCURRENCY',
    'LEGACY TRANSITION',
    'EXAMPLES',
    'SEE ALSO',
  ]) {
    t.match(manSrc, new RegExp(`^\\.SH "?${s}"?$`, 'm'), s);
  }
});

t.test('the man page names every command and option', async (t) => {
  t.ok(KERNEL_COMMANDS.length === 5, 'five kernel commands');
  const commands = manSection(manSrc, 'COMMANDS');
  for (const c of KERNEL_COMMANDS) t.match(commands, new RegExp(`^${c}\\b`, 'm'), `kernel command ${c} has an entry`);
  const admin = adminCommands();
  t.ok(admin.length >= 6, `cli.ts lists its admin commands (${admin.join(', ')})`);
  for (const c of admin) {
    t.match(commands, new RegExp(`^${c}\\b`, 'm'), `admin command ${c} has an entry`);
    t.match(manSection(manSrc, 'SYNOPSIS'), new RegExp(`\\b${c}\\b`), `admin command ${c} is in the synopsis`);
  }
  const options = manSection(manSrc, 'OPTIONS');
  for (const o of ['-d', '--debug', '-f', '--foreground', '-s', '--storagedir', '-h', '--help']) {
    t.match(options, new RegExp(`(^|[ ,])${o.replace(/-/g, '\\-')}\\b`, 'm'), `option ${o}`);
  }
  const conf = manSection(manSrc, 'CONFIGURATION');
  for (const k of ['[nfsdcltrack]', '[nfsdcld]', 'storagedir', 'debug', '/etc/nfs.conf', '/etc/nfs.conf.d', '/usr/etc/nfs.conf']) t.ok(conf.includes(k), `configuration: ${k}`);
  for (const f of ['0', 'general', 'call', 'auth', 'parse', 'all', '1']) t.match(conf, new RegExp(`(^|[ ,])${f}([ ,]|$)`, 'm'), `debug facility ${f}`);
});

t.test('the man pages document every environment variable the code reads', async (t) => {
  const vars = envVarsInCode();
  t.ok(vars.length >= 9, `found ${vars.length} variables in the code`);
  // Each in one page at least: the daemon's own hooks are in nfsdcld.8.
  const env = manSection(manSrc, 'ENVIRONMENT') + '\n' + manSection(cldSrc, 'ENVIRONMENT');
  for (const v of vars) t.match(env, new RegExp(`^${v}$`, 'm'), `${v} has an entry in ENVIRONMENT`);
  for (const v of ['NFSDCLTRACK_CONF_FILE', 'NFSDCLTRACK_SYSLOG_SOCKET', 'NFSDCLTRACK_CRASH_AT']) t.match(manSection(cldSrc, 'ENVIRONMENT'), new RegExp(`^${v}$`, 'm'), `nfsdcld.8: ${v}`);
  for (const v of ['NFSDCLTRACK_CLIENT_HAS_SESSION', 'NFSDCLTRACK_GRACE_START', 'NFSDCLTRACK_LEGACY_RECDIR', 'NFSDCLTRACK_LEGACY_TOPDIR']) {
    t.ok(vars.includes(v), `the code reads the kernel's ${v}`);
  }
});

t.test('the man page lists every crash point', async (t) => {
  const points = crashPointsInCode();
  t.ok(points.length >= 10, `found ${points.length} crash points in lib/`);
  // The daemon's own points (cld-*) in nfsdcld.8, the store's and the upcall's in nfsdcltrack.8.
  const env = manSection(manSrc, 'ENVIRONMENT');
  const cldEnv = manSection(cldSrc, 'ENVIRONMENT');
  for (const p of points) t.match(p.startsWith('cld-') ? cldEnv : env, new RegExp(`(^|\\s)${p}([ ,.]|$)`, 'm'), `crash point ${p}`);
});

t.test('the man page gives every exit status', async (t) => {
  const exit = manSection(manSrc, 'EXIT STATUS');
  const row = (status: number) => new RegExp(`^${status}$`, 'm');
  t.match(exit, row(0), 'status 0');
  t.match(exit, row(1), 'status 1 (usage)');
  // SPEC §6: every errno the kernel commands return has its own row.
  const rows: Array<[string, number, number]> = [
    ['EINVAL', errno.EINVAL, 234],
    ['ENOBUFS', errno.ENOBUFS, 151],
    ['ERANGE', errno.ERANGE, 222],
    ['ENOSYS', errno.ENOSYS, 218],
    ['EACCES', errno.EACCES, 243],
    ['EPERM', errno.EPERM, 255],
    ['EREMOTEIO', errno.EREMOTEIO, 135],
  ];
  for (const [name, value, status] of rows) {
    t.equal(errno.statusFor(value), status, `${name} is ${status} (SPEC §6)`);
    t.match(exit, row(status), `status ${status} has a row`);
    t.match(exit, new RegExp(`^${name}:`, 'm'), `${name} is named`);
  }
  // The "256 - errno" row, with its examples.
  t.match(exit, /^256 - errno$/m, 'the 256 - errno row');
  for (const [name, value] of [['ENOTDIR', errno.ENOTDIR], ['EROFS', errno.EROFS], ['ENOENT', errno.ENOENT]] as const) {
    t.match(exit, new RegExp(`${errno.statusFor(value)} \\(${name}\\)`), `${name} example (${errno.statusFor(value)})`);
  }
  // Every errno constant the module exports is accounted for.
  const known = new Set(['EPERM', 'ENOENT', 'EACCES', 'EINVAL', 'EROFS', 'ENOTDIR', 'ERANGE', 'ENOSYS', 'ENOBUFS', 'EREMOTEIO']);
  for (const [k, v] of Object.entries(errno)) {
    if (typeof v === 'number' && /^E[A-Z]+$/.test(k)) t.ok(known.has(k) && exit.includes(String(errno.statusFor(v))), `errno ${k} (${errno.statusFor(v)}) appears in EXIT STATUS`);
  }
});

t.test('the man page matches the store constants', async (t) => {
  const files = manSection(manSrc, 'FILES');
  for (const f of [SNAPSHOT_NAME, JOURNAL_NAME, LOCK_NAME, SNAPSHOT_TMP_NAME]) t.ok(files.includes(f), `FILES names ${f}`);
  const fmt = manSection(manSrc, 'STORE FORMAT');
  t.ok(fmt.includes(`#nfsdcltrack-snapshot v${FORMAT_VERSION} gen=`), 'snapshot header');
  t.ok(fmt.includes(`#nfsdcltrack-journal v${FORMAT_VERSION} gen=`), 'journal header');
  for (const k of ['records=', 'v40=', 'times=', 'current=', 'recovery=', 'set', 'del', 'lost', 'grace', 'princhash', 'CRC-32', 'Version 1 stores', 'epoch 1']) t.ok(fmt.includes(k), `STORE FORMAT mentions ${k}`);
  t.ok(read('docs/format.md').includes(`#nfsdcltrack-snapshot v${FORMAT_VERSION} gen=`), 'docs/format.md quotes the current format');
  const crash = manSection(manSrc, 'CRASH RECOVERY AND DURABILITY');
  t.ok(crash.includes(`${DEFAULT_COMPACT_BYTES / 1024} KiB`), 'CRASH RECOVERY gives the compaction threshold');
  t.ok(manSection(manSrc, 'ENVIRONMENT').includes(String(DEFAULT_COMPACT_BYTES)), 'NFSDCLTRACK_COMPACT_BYTES default');
  const conc = manSection(manSrc, 'CONCURRENCY');
  t.ok(conc.includes(`${DEFAULT_LOCK.waitMs / 1000} seconds`), `lock wait ${DEFAULT_LOCK.waitMs} ms`);
  t.ok(conc.includes(`${DEFAULT_LOCK.staleMs / 1000} seconds`), `stale lock ${DEFAULT_LOCK.staleMs} ms`);
});

t.test('every store line quoted in the docs has a valid checksum', async (t) => {
  // Snapshot lines of both versions (v1: id time session; v2: four epoch fields more), journal entries of every op.
  const storeLine =
    /^(#nfsdcltrack-(snapshot|journal|store|seen) v\d+ .* [0-9a-f]{8}|(-|[0-9a-f]+) \d+ [01]( \S+ \S+ \S+ \S+)? [0-9a-f]{8}|~ \d{11} \d{10} [0-9a-f]{8}|\d+ \d+ (set|del|lost|grace) .* [0-9a-f]{8})$/;
  const docs: Array<[string, string]> = [['man/nfsdcltrack.8', man]];
  for (const rel of ['README.md', 'docs/format.md', 'docs/ha.md']) docs.push([rel, read(rel)]);
  for (const [name, text] of docs) {
    let n = 0;
    for (const raw of text.split('\n')) {
      const line = raw.trim().replace(/^\|\s*/, '');
      if (!storeLine.test(line)) continue;
      n++;
      t.not(unseal(line), null, `${name}: ${line}`);
    }
    t.ok(n > 0, `${name} quotes ${n} store lines`);
  }
});

t.test('the awk and shell recipes work on a real store', async (t) => {
  ensureBuilt();
  const awk = which('awk');
  if (!awk) {
    t.skip('no awk on this machine: recipes NOT checked', () => {});
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-docs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = path.join(dir, 'store');
  const up = (env: Record<string, string>, ...args: string[]) => {
    const r = spawnSync(BIN, ['-f', '-s', store, ...args], { env, encoding: 'utf8' });
    t.equal(r.status, 0, `${args.join(' ')} exits 0 ${r.stderr}`);
  };
  const S = { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' };
  up(S, 'create', '4c696e7578');
  up(S, 'create', '6869');
  up({}, 'create', '0a0b0c');
  up({}, 'create', '');
  up({}, 'gracedone', '0');
  up({}, 'remove', '6869');
  up(S, 'create', '4c696e7578204e46532073657276657221');
  const blocks = [...read('docs/format.md').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  t.ok(blocks.length >= 3, 'docs/format.md has its sh blocks');
  const sh = (script: string) => spawnSync('bash', ['-c', script], { cwd: store, encoding: 'utf8' });

  const list = sh(blocks[0]);
  t.equal(list.status, 0, 'the listing one-liner runs');
  const byId = new Map(list.stdout.trim().split('\n').map((l) => [l.split(' ')[0], l.split(' ').slice(2).join(' ')]));
  t.same(
    [...byId.entries()],
    [
      ['-', '0 (empty id)'],
      ['0a0b0c', '0 \\x0a\\x0b\\x0c'],
      ['4c696e7578', '1 Linux'],
      ['4c696e7578204e46532073657276657221', '1 Linux NFS server!'],
    ],
    'the listing replays snapshot + journal and decodes the ids',
  );

  const verify = sh(blocks[1]);
  t.equal(verify.status, 0, 'the checksum one-liner runs');
  const lines = verify.stdout.trim().split('\n');
  t.equal(lines.length, fs.readFileSync(path.join(store, SNAPSHOT_NAME), 'utf8').split('\n').length - 1 + fs.readFileSync(path.join(store, JOURNAL_NAME), 'utf8').split('\n').length - 1, 'one verdict per line');
  t.ok(lines.every((l) => l.startsWith('ok ')), 'every line is ok');
  const journal = path.join(store, JOURNAL_NAME);
  const good = fs.readFileSync(journal, 'latin1');
  fs.writeFileSync(journal, good.replace(/ 4c696e7578204e46532073657276657221 /, ' 4c696e7578204e46532073657276657222 '));
  const bad = sh(blocks[1]).stdout.trim().split('\n');
  t.equal(bad.filter((l) => l.startsWith('BAD ')).length, 1, 'a changed character is caught');
  fs.writeFileSync(journal, good);

  // One line's checksum by python3, perl and gzip: each that is installed.
  const quoted = /printf %s '([^']*)'/.exec(blocks[2])![1];
  t.match(read('docs/format.md'), new RegExp(`All three print \`${crcHex(quoted)}\``), 'the docs give the right CRC of the quoted text');
  for (const cmd of blocks[2].trim().split('\n')) {
    const tool = /\| (\S+)/.exec(cmd)![1];
    if (!which(tool)) {
      t.comment(`${tool} is not installed: its recipe is NOT checked`);
      continue;
    }
    const r = sh(cmd);
    if (tool === 'perl' && /Compress\/Zlib/.test(r.stderr)) {
      t.comment('perl lacks Compress::Zlib (perl-modules): its recipe is NOT checked');
      continue;
    }
    t.equal(r.stdout.trim(), crcHex(quoted), `${tool} computes the line's CRC-32`);
  }

  // The man page's own recipes.
  const manAwk = /^awk '([\s\S]*?FNR == 1[\s\S]*?)' \\\n\s*clients\.snap clients\.journal \| LC_ALL=C sort$/m.exec(man);
  t.ok(manAwk, 'the man page has its replay one-liner');
  if (manAwk) {
    const r = spawnSync(awk, [manAwk[1], SNAPSHOT_NAME, JOURNAL_NAME], { cwd: store, encoding: 'utf8' });
    t.same(
      r.stdout.trim().split('\n').map((l) => l.split(' ')[0]).sort(),
      ['-', '0a0b0c', '4c696e7578', '4c696e7578204e46532073657276657221'],
      'the man page replay lists the same clients',
    );
  }
  if (which('look')) {
    const look = sh(`LC_ALL=C look -- '4c696e7578 ' ${SNAPSHOT_NAME}`);
    t.match(look.stdout, /^4c696e7578 \d+ 1 1 - - - [0-9a-f]{8}\n$/, 'look finds one client in the snapshot');
  } else {
    t.comment('look (bsdextrautils) is not installed: the look recipe is NOT checked');
  }
  t.equal(sh(`LC_ALL=C sort -c ${SNAPSHOT_NAME}`).status, 0, 'the snapshot is in LC_ALL=C order');
});

t.test('the replay one-liners apply the epochs of a store the daemon wrote', { skip: spawnSync('python3', ['-c', 'import pty, tty'], { stdio: 'ignore' }).status !== 0 && 'python3 with pty is missing: NOT checked' }, async (t) => {
  ensureBuilt();
  const awk = which('awk');
  if (!awk) {
    t.skip('no awk on this machine: recipes NOT checked', () => {});
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-docs-cld-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = path.join(dir, 'store');
  const conf = path.join(dir, 'nfs.conf');
  fs.writeFileSync(conf, '');
  fs.mkdirSync(path.join(dir, 'none'));
  const env = { NFSDCLTRACK_CONF_FILE: conf, NFSDCLTRACK_NFSDCLD_DIR: path.join(dir, 'none'), NFSDCLTRACK_RECOVERY_DIR: path.join(dir, 'none') };
  const d = await CldDriver.open(path.join(dir, 'pipefs'), store, { cmd: [path.join(ROOT, 'dist', 'nfsdcld')], env });
  let xid = 0;
  const call = async (cmd: number, name?: string, ph?: Buffer) => {
    const r = await d.call(encodeMessage({ vers: cmd === Cmd.GetVersion ? 1 : 2, cmd, xid: ++xid }, name === undefined ? undefined : { name: Buffer.from(name), princhash: ph ?? null }), 20_000);
    t.equal(r.final.readInt16LE(2), 0, `cmd ${cmd} ${name ?? ''}: status 0`);
  };
  const listing = [...read('docs/format.md').matchAll(/```sh\n([\s\S]*?)```/g)][0][1];
  const manAwk = /^awk '([\s\S]*?FNR == 1[\s\S]*?)' \\\n\s*clients\.snap clients\.journal \| LC_ALL=C sort$/m.exec(man)![1];
  const listed = () => {
    const a = spawnSync('bash', ['-c', listing], { cwd: store, encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    const b = spawnSync(awk, [manAwk, SNAPSHOT_NAME, JOURNAL_NAME], { cwd: store, encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ')[0]).sort();
    return { docs: a, man: b };
  };
  try {
    await call(Cmd.GetVersion);
    await call(Cmd.GraceStart);
    await call(Cmd.Create, 'alpha', Buffer.alloc(32, 0x11));
    await call(Cmd.Create, 'bravo');
    await call(Cmd.GraceDone);
    await call(Cmd.GraceStart);
    // During grace both may reclaim (members of the recovery epoch).
    t.same(listed(), { docs: ['616c706861', '627261766f'], man: ['616c706861', '627261766f'] }, 'during grace: both clients of the recovery epoch');
    await call(Cmd.Create, 'alpha', Buffer.alloc(32, 0x11));
    await call(Cmd.GraceDone);
    t.match(fs.readFileSync(path.join(store, JOURNAL_NAME), 'utf8'), / grace - 3 0 /, 'the journal has the grace entries');
    t.same(listed(), { docs: ['616c706861'], man: ['616c706861'] }, 'after grace: bravo, which did not reclaim, is not listed');
  } finally {
    await d.close();
  }
});

t.test('the demo runs and exits 0', async (t) => {
  ensureBuilt();
  const env = { ...process.env };
  delete env.NFSDCLTRACK; // the demo runs this checkout's dist/nfsdcltrack
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'demo.sh')], { encoding: 'utf8', timeout: 120_000, env });
  t.equal(r.status, 0, `scripts/demo.sh exits 0 ${r.stderr}`);
  t.match(r.stdout, /Done: every upcall returned the expected status\./, 'every step as expected');
  t.match(r.stdout, /--- v4_end_grace: Y/, 'grace lifted on the first boot');
  t.match(r.stdout, /gen=0000000000000002/, 'gracedone compacted');
  const m = /^Demo store: (\S+)/m.exec(r.stdout);
  t.ok(m && !fs.existsSync(path.dirname(m[1])), 'its temporary directory is removed');
});
