// No more privilege than needed: the built upcall and daemon, started as
// root through their launchers (setpriv in the #! chain), run with every
// capability set empty, and still do their work (the root-owned 0700 store,
// v4_end_grace). Read from /proc/PID/status of the running processes: the
// upcall paused at a crash point with the store lock held, the daemon serving.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { privateProgram, ROOT } from './lib/built';
import { CldDriver, isolated } from './lib/cld-driver';
import { Cmd, decodeHeader, encodeMessage } from '../lib/cld/codec';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-caps-'));
t.teardown(() => fs.rmSync(TMP, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const usesSetpriv = (f: string): boolean => fs.readFileSync(f, 'utf8').split('\n')[0].includes('/usr/bin/setpriv');
const CAPS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'];

function caps(pid: number): Record<string, string> | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
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

t.test('the upcall, paused with the lock held, has no capability; its work gets done', { skip: !isRoot && 'needs root' }, async (t) => {
  const bin = privateProgram(path.join(TMP, 'dist'));
  if (!usesSetpriv(bin)) {
    t.comment('skipped: the launcher does not run setpriv here (no /usr/bin/setpriv or env -S at build time)');
    return;
  }
  const store = path.join(TMP, 'store');
  const grace = path.join(TMP, 'v4_end_grace');
  fs.writeFileSync(grace, '', { mode: 0o600 });
  const env = { NFSDCLTRACK_END_GRACE_FILE: grace, NFSDCLTRACK_CONF_FILE: path.join(TMP, 'nfs.conf'), NFSDCLTRACK_SYSLOG_SOCKET: path.join(TMP, 'no-syslog') };
  t.equal(spawnSync(bin, ['-s', store, 'init'], { env: { ...env, NFSDCLTRACK_GRACE_START: '1' } }).status, 0, 'init');
  const st = fs.statSync(store);
  t.equal(st.uid, 0, 'the store is root\'s');
  t.equal(st.mode & 0o777, 0o700, 'mode 0700');
  const p = spawn(bin, ['-s', store, 'create', '0102'], { env: { ...env, NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y', NFSDCLTRACK_GRACE_START: '1', NFSDCLTRACK_CRASH_AT: 'lock-taken:3000' }, stdio: 'ignore' });
  const done = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  let seen: Record<string, string> | null = null;
  for (let i = 0; i < 200 && !seen; i++) {
    await sleep(25);
    const s = caps(p.pid!);
    // past env and setpriv: the runtime itself, holding the lock
    if (s && !/^(env|setpriv)$/.test(s.Name) && fs.existsSync(path.join(store, 'clients.lock'))) seen = s;
  }
  t.ok(seen, 'saw the runtime holding the lock');
  if (seen) {
    t.same(pick(seen), ZERO, `no capability in any set (${seen.Name})`);
    t.match(seen.Uid, /^0\s+0\s+0\s+0$/, 'still uid 0');
  }
  t.equal(await done, 0, 'create: 0');
  t.equal(spawnSync(bin, ['-s', store, 'check', '0102'], { env: { ...env, NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' } }).status, 0, 'check: the record was written');
  t.match(fs.readFileSync(grace, 'utf8'), /^Y/, 'v4_end_grace (root\'s, 0600) was written');
});

t.test('the daemon, serving, has no capability', { skip: (!isRoot && 'needs root') || (spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status !== 0 && 'python3 with pty is missing') }, async (t) => {
  const bin = path.join(ROOT, 'dist', 'nfsdcld');
  if (!fs.existsSync(bin) || !usesSetpriv(bin)) {
    t.comment('skipped: dist/nfsdcld does not run setpriv here');
    return;
  }
  const iso = path.join(TMP, 'iso');
  fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
  const pipefs = path.join(TMP, 'pipefs');
  fs.mkdirSync(pipefs);
  const store = path.join(TMP, 'cld-store');
  const d = await CldDriver.open(pipefs, store, { cmd: isolated(iso, [bin]), env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf') } });
  try {
    const r = await d.call(encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: 5 }), 20_000);
    t.equal(decodeHeader(r.final).status, 0, 'GetVersion answered');
    const pids = spawnSync('pgrep', ['-f', '--', `-s ${store}`], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number);
    const daemons = pids.map((pid) => caps(pid)).filter((s): s is Record<string, string> => !!s && /^(node|bun|MainThread)$/.test(s.Name));
    t.ok(daemons.length >= 1, `found the daemon (${pids.join(' ')})`);
    for (const s of daemons) t.same(pick(s), ZERO, `no capability in any set (${s.Name} ${s.Pid})`);
    t.equal(fs.statSync(store).mode & 0o777, 0o700, 'its store: 0700');
  } finally {
    await d.close();
  }
});
