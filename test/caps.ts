// No more privilege than needed: the built upcall and daemon, started as
// root through their launchers (dist/nocaps as the interpreter on x86-64;
// setpriv through env -S in the fallback build), run with every capability
// set empty, and still do their work (the root-owned 0700 store, the legacy
// recovery dir, v4_end_grace, the pipe). Read from /proc/PID/status of the
// running processes: the upcall paused at a crash point with the store lock
// held, the daemon serving. Then dist/nocaps itself: its bytes are
// scripts/nocaps.S assembled, and it behaves as that file says.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { privateProgram, ROOT } from './lib/built';
import { CldDriver, isolated } from './lib/cld-driver';
import { Cmd, decodeHeader, encodeMessage } from '../lib/cld/codec';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-caps-'));
fs.chmodSync(TMP, 0o755); // the unprivileged cases below run programs in it
t.teardown(() => fs.rmSync(TMP, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const CAPS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'];
const SETPRIV = '/usr/bin/setpriv';
const hasSetpriv = fs.existsSync(SETPRIV);
const NOBODY = 65534;

function status(pid: number | 'self', text?: string): Record<string, string> | null {
  try {
    text ??= fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^(\w+):\s+(.*)$/gm)) out[m[1]] = m[2];
  return out;
}
const ZERO = Object.fromEntries(CAPS.map((c) => [c, '0000000000000000']));
const pick = (s: Record<string, string>) => Object.fromEntries(CAPS.map((c) => [c, s[c]]));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Capabilities in the parent's inheritable and ambient sets too, so that emptying them shows
// (not all: a container's bounding set may lack some, which may then not be raised).
const RAISED = '+dac_override,+setpcap,+sys_admin';
const RAISE = [SETPRIV, `--inh-caps=${RAISED}`, `--ambient-caps=${RAISED}`, '--'];

/** The upcall's launcher as built by default (x86-64: nocaps) and with NFSDCLTRACK_NOCAPS=0 (setpriv). */
function builds(): [string, string][] {
  const nocaps = privateProgram(path.join(TMP, 'dist'));
  const out: [string, string][] = [['nocaps', nocaps]];
  if (!hasSetpriv) return out;
  const dir = path.join(TMP, 'dist-setpriv');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { env: { ...process.env, NFSDCLTRACK_DIST: dir, NFSDCLTRACK_NOCAPS: '0' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build: ${r.stderr}`);
  out.push(['setpriv', path.join(dir, 'nfsdcltrack')]);
  return out;
}

t.test('the launchers drop capabilities: nocaps on x86-64', async (t) => {
  const bin = privateProgram(path.join(TMP, 'dist'));
  const line = fs.readFileSync(bin, 'utf8').split('\n')[0];
  if (process.arch === 'x64') {
    t.match(line, /^#!\/\S+\/nocaps (BUN_JSC_\w+=\d+ )*\/\S+$/, 'the upcall');
    t.match(
      fs.readFileSync(path.join(ROOT, 'dist', 'nfsdcld'), 'utf8').split('\n')[0],
      hasSetpriv ? /^#!\/usr\/bin\/env -S \/usr\/bin\/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,\+dac_read_search -- \/\S+\/(node|bun)$/ : /^#!\/\S+\/nocaps \/\S+\/(node|bun)$/,
      'the daemon: CAP_DAC_READ_SEARCH alone, through setpriv (nocaps and none without it)',
    );
  } else t.match(line, /\/usr\/bin\/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- /, 'the upcall, through setpriv');
});

t.test('the upcall, paused with the lock held, has no capability; its work gets done', { skip: (!isRoot || !hasSetpriv) && 'needs root and setpriv' }, async (t) => {
  // the state without the launcher's drop: what the test would see if it failed
  const before = status('self', spawnSync(RAISE[0], [...RAISE.slice(1), '/bin/cat', '/proc/self/status'], { encoding: 'utf8' }).stdout)!;
  t.not(before.CapAmb, ZERO.CapAmb, `the parent's ambient set is not empty (${before.CapAmb})`);
  t.not(before.CapInh, ZERO.CapInh, 'nor its inheritable set');
  t.not(before.CapBnd, ZERO.CapBnd, 'and its bounding set');
  for (const [name, bin] of builds()) {
    t.test(name, async (t) => {
      const dir = fs.mkdtempSync(path.join(TMP, `${name}-`));
      const store = path.join(dir, 'store');
      const grace = path.join(dir, 'v4_end_grace');
      fs.writeFileSync(grace, '', { mode: 0o600 });
      const legacy = path.join(dir, 'v4recovery'); // root's, 0700, as nfs-utils leaves it
      fs.mkdirSync(path.join(legacy, '0506'), { recursive: true, mode: 0o700 });
      fs.chmodSync(legacy, 0o700);
      // the kernel's environment: nothing but the NFSDCLTRACK_ variables (and the test's own)
      const env = { NFSDCLTRACK_END_GRACE_FILE: grace, NFSDCLTRACK_CONF_FILE: path.join(dir, 'nfs.conf'), NFSDCLTRACK_SYSLOG_SOCKET: path.join(dir, 'no-syslog') };
      const run = (args: string[], extra: Record<string, string> = {}) => spawnSync(RAISE[0], [...RAISE.slice(1), bin, '-s', store, ...args], { env: { ...env, ...extra } }).status;
      t.equal(run(['init'], { NFSDCLTRACK_GRACE_START: '1' }), 0, 'init');
      const st = fs.statSync(store);
      t.equal(st.uid, 0, "the store is root's");
      t.equal(st.mode & 0o777, 0o700, 'mode 0700');
      const p = spawn(RAISE[0], [...RAISE.slice(1), bin, '-s', store, 'create', '0102'], { env: { ...env, NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y', NFSDCLTRACK_GRACE_START: '1', NFSDCLTRACK_CRASH_AT: 'lock-taken:3000' }, stdio: 'ignore' });
      const done = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
      let seen: Record<string, string> | null = null;
      for (let i = 0; i < 200 && !seen; i++) {
        await sleep(25);
        const s = status(p.pid!);
        // past setpriv, nocaps and env: the runtime itself, holding the lock
        if (s && !/^(env|setpriv|nocaps)$/.test(s.Name) && fs.existsSync(path.join(store, 'clients.lock'))) seen = s;
      }
      t.ok(seen, 'saw the runtime holding the lock');
      if (seen) {
        t.same(pick(seen), ZERO, `no capability in any set (${seen.Name})`);
        t.match(seen.Uid, /^0\s+0\s+0\s+0$/, 'still uid 0');
      }
      t.equal(await done, 0, 'create: 0');
      t.equal(run(['check', '0102'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'check: the record was written');
      t.match(fs.readFileSync(grace, 'utf8'), /^Y/, "v4_end_grace (root's, 0600) was written");
      t.equal(run(['check', '0506'], { NFSDCLTRACK_LEGACY_RECDIR: path.join(legacy, '0506') }), 0, 'a client of the legacy recovery dir (0700) is let in');
      t.notOk(fs.existsSync(path.join(legacy, '0506')), 'and its directory removed');
      // root with CAP_DAC_OVERRIDE writes anywhere; without it, not in another user's 0700 dir
      const theirs = path.join(dir, 'theirs');
      fs.mkdirSync(theirs, { mode: 0o700 });
      fs.chownSync(theirs, NOBODY, NOBODY);
      t.not(spawnSync(bin, ['-s', path.join(theirs, 'store'), 'init'], { env }).status, 0, "a store in another user's 0700 dir is out of its reach");
      t.notOk(fs.existsSync(path.join(theirs, 'store')), 'nothing written there');
      t.equal(spawnSync(process.execPath, [path.join(path.dirname(bin), 'cli.js'), '-s', path.join(theirs, 'store'), 'init'], { env }).status, 0, 'where the program run with root\'s capabilities writes');
    });
  }
});

t.test('the daemon, serving, holds CAP_DAC_READ_SEARCH and nothing else', { skip: (!isRoot && 'needs root') || (spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status !== 0 && 'python3 with pty is missing') }, async (t) => {
  const bin = path.join(ROOT, 'dist', 'nfsdcld');
  const iso = path.join(TMP, 'iso');
  fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
  const pipefs = path.join(TMP, 'pipefs');
  fs.mkdirSync(pipefs);
  const store = path.join(TMP, 'cld-store');
  const d = await CldDriver.open(pipefs, store, { cmd: isolated(iso, [bin]), env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf') } });
  try {
    const r = await d.call(encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: 5 }), 20_000);
    t.equal(decodeHeader(r.final).status, 0, 'GetVersion answered (through the pipe)');
    const pids = spawnSync('pgrep', ['-f', '--', `-s ${store}`], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number);
    const daemons = pids.map((pid) => status(pid)).filter((s): s is Record<string, string> => !!s && /^(node|bun|MainThread)$/.test(s.Name));
    t.ok(daemons.length >= 1, `found the daemon (${pids.join(' ')})`);
    // CAP_DAC_READ_SEARCH is bit 2: nfsd's clients/ (0600) read at GraceDone (lib/cld/carry.ts).
    const ONLY = { ...ZERO, CapPrm: '0000000000000004', CapEff: '0000000000000004', CapBnd: '0000000000000004' };
    for (const s of daemons) t.same(pick(s), hasSetpriv ? ONLY : ZERO, `CAP_DAC_READ_SEARCH alone, none inheritable or ambient (${s.Name} ${s.Pid})`);
    const st = fs.statSync(store);
    t.equal(st.mode & 0o777, 0o700, 'its store: 0700');
    t.equal(st.uid, 0, "root's");
  } finally {
    await d.close();
  }
});

const nocaps = path.join(ROOT, 'dist', 'nocaps');
const binutils = ['as', 'objcopy'].every((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
t.test('dist/nocaps is scripts/nocaps.S assembled', { skip: (process.arch !== 'x64' && 'x86-64 only') || (!binutils && 'needs as and objcopy (binutils)') }, async (t) => {
  const dir = fs.mkdtempSync(path.join(TMP, 'as-'));
  const obj = path.join(dir, 'nocaps.o');
  const text = path.join(dir, 'text');
  t.equal(spawnSync('as', ['-o', obj, path.join(ROOT, 'scripts', 'nocaps.S')], { stdio: 'inherit' }).status, 0, 'as');
  t.equal(spawnSync('objcopy', ['-O', 'binary', '-j', '.text', obj, text], { stdio: 'inherit' }).status, 0, 'objcopy');
  t.notMatch(spawnSync('objdump', ['-r', obj], { encoding: 'utf8' }).stdout, /R_X86_64/, 'no relocation');
  const code = fs.readFileSync(text);
  const elf = fs.readFileSync(nocaps);
  t.ok(elf.subarray(elf.length - code.length).equals(code), `its code is the assembled text (${code.length} bytes)`);
  t.equal(elf.readBigUInt64LE(24), BigInt(elf.length - code.length), 'and starts at the entry point');
});

t.test('dist/nocaps', { skip: process.arch !== 'x64' && 'x86-64 only' }, async (t) => {
  const run = (args: string[], opts: { env?: Record<string, string>; uid?: number; gid?: number; pre?: string[] } = {}) => {
    const [cmd, ...rest] = [...(opts.pre ?? []), nocaps, ...args];
    return spawnSync(cmd, rest, { env: opts.env ?? { KEPT: 'yes' }, encoding: 'utf8', uid: opts.uid, gid: opts.gid });
  };
  const envOut = run(['A=1  B=x=y\tC= /usr/bin/env']);
  t.equal(envOut.status, 0, 'NAME=VALUE words, blanks between them');
  // (tap adds variables of its own to a child's environment: they follow KEPT)
  t.same(envOut.stdout.split('\n').slice(0, 4), ['A=1', 'B=x=y', 'C=', 'KEPT=yes'], 'the words, then the inherited environment');
  const script = path.join(TMP, 'script');
  fs.writeFileSync(script, `#!${nocaps} X=1 /bin/sh\necho "$0|$1|$2|$X"\n`, { mode: 0o755 });
  const viaScript = spawnSync(script, ['a b', ''], { env: {}, encoding: 'utf8' });
  t.equal(viaScript.stdout, `${script}|a b||1\n`, 'as a #! interpreter: the runtime gets the script and its arguments');
  for (const [args, why] of [[[], 'no argument'], [['  '], 'no runtime'], [['A=1 B /bin/true'], "a word without '=' before the runtime"]] as const) {
    const r = run([...args]);
    t.equal(r.status, 127, `${why}: 127`);
    t.match(r.stderr, /^nocaps: usage: #!nocaps \[NAME=VALUE \.\.\.\] RUNTIME\n$/, `${why}: usage`);
  }
  const missing = run(['/nonexistent']);
  t.equal(missing.status, 127, 'a runtime that is not there: 127');
  t.equal(missing.stderr, 'nocaps: cannot execute the runtime\n', 'and says so');
  if (isRoot) {
    const caps = status('self', run(['/bin/cat', '/proc/self/status'], { pre: RAISE }).stdout)!;
    t.same(pick(caps), ZERO, 'root, every set filled: all emptied');
    // holding capabilities but not CAP_SETPCAP, it may not empty the bounding set: fatal, as in nfs-utils
    const r = run(['/bin/true'], { pre: [SETPRIV, '--bounding-set=-setpcap', '--'] });
    t.equal(r.status, 127, 'no CAP_SETPCAP: 127, the runtime not started');
    t.equal(r.stderr, 'nocaps: cannot drop capabilities\n', 'and says so');
    const user = status('self', run(['/bin/cat', '/proc/self/status'], { uid: NOBODY, gid: NOBODY }).stdout)!;
    t.same({ ...pick(user), CapBnd: ZERO.CapBnd }, ZERO, 'an unprivileged user: nothing to drop, nothing held');
    t.not(user.CapBnd, ZERO.CapBnd, 'and a bounding set it may not change, left as setpriv leaves it');
  }
});
