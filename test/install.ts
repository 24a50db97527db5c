// scripts/install.sh: staged installs (DESTDIR) and installs under a
// temporary PREFIX, checked file by file, then --uninstall, which must leave
// the tree exactly as it was, putting back a program it replaced and the
// kernel's cltrack_prog. Everything happens in temporary directories (the
// module parameter is a plain file named by --sysfs-param), so root is not
// needed and nothing on the machine is touched.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { Cmd, decodeHeader, encodeMessage } from '../lib/cld/codec';
import { CldDriver } from './lib/cld-driver';
import { tree } from './lib/tree';

const ROOT = path.resolve(__dirname, '..');
const SCRIPT = path.join(ROOT, 'scripts', 'install.sh');
const DIST = path.join(ROOT, 'dist');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-install-'));
t.teardown(() => fs.rmSync(TMP, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string): string => {
  const d = path.join(TMP, `${name}-${++n}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
};

interface Run {
  status: number | null;
  out: string;
}
function install(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync('bash', [SCRIPT, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: TMP, ...env },
    timeout: 120_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
/** Run an installed program the way the kernel does: no PATH, no HOME, only NFSDCLTRACK_* variables. */
function kernelRun(prog: string, args: string[], env: Record<string, string> = {}): number | null {
  return spawnSync(prog, args, { env, encoding: 'utf8', timeout: 60_000 }).status;
}
const firstLine = (f: string): string => fs.readFileSync(f, 'utf8').split('\n')[0];
/** The runtime a launcher names: the last word of its #! line (it may go through nocaps or env -S). */
const interpreter = (f: string): string => firstLine(f).replace(/^#!\s*/, '').trim().split(/\s+/).pop()!;

/**
 * A fake checkout with a Bun-style build: the launcher names a runtime inside
 * node_modules (here a shell script standing in for Bun, running Node), and
 * the program answers like nfsdcltrack does to the installer's self-test
 * (check of an unknown client: 255).
 */
function fakeCheckout(launcherBody?: string): string {
  const repo = fresh('repo');
  const rt = path.join(repo, 'node_modules', '@oven', 'bun-linux-x64', 'bin', 'bun');
  fs.mkdirSync(path.dirname(rt), { recursive: true });
  fs.writeFileSync(rt, `#!/bin/sh\n# stand-in runtime\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
  fs.mkdirSync(path.join(repo, 'dist'));
  fs.writeFileSync(
    path.join(repo, 'dist', 'cli.bun.js'),
    `const a = process.argv.slice(2).filter((x, i, all) => x !== '-s' && x !== '-f' && all[i - 1] !== '-s');\n` +
      `require('fs').writeFileSync(process.env.FAKE_LOG || '/dev/null', a.join(' ') + '\\n', { flag: 'a' });\n` +
      `process.exit(a[0] === 'check' && a[1] === '00' ? 255 : 0);\n`,
  );
  fs.writeFileSync(path.join(repo, 'dist', 'cli.bun.js.jsc'), 'bytecode');
  fs.writeFileSync(path.join(repo, 'dist', 'cli.js'), '#!/usr/bin/node\n', { mode: 0o755 });
  fs.writeFileSync(path.join(repo, 'dist', 'nfsdcltrack'), launcherBody ?? `#!${rt}\nrequire('./cli.bun.js');\n`, { mode: 0o755 });
  fs.mkdirSync(path.join(repo, 'man'));
  fs.writeFileSync(path.join(repo, 'man', 'nfsdcltrack.8'), '.TH NFSDCLTRACK 8\n');
  return repo;
}

t.test('--help prints the usage; unknown options and relative paths are usage errors', async (t) => {
  const h = install(['--help']);
  t.equal(h.status, 0);
  t.match(h.out, /--uninstall/);
  t.match(h.out, /--kernel-persist/);
  t.equal(install(['--bogus']).status, 1);
  t.equal(install(['--prefix', 'relative/dir']).status, 1);
});

t.test('a missing build is reported, nothing is installed', async (t) => {
  const repo = fresh('empty-repo');
  const dest = fresh('dest');
  const r = install(['--source', repo, '--destdir', dest]);
  t.equal(r.status, 2);
  t.match(r.out, /dist\/cli\.js is missing|dist\/nfsdcltrack.*missing/);
  t.same(tree(dest, { sizes: true }), []);
});

t.test('DESTDIR install of a Bun-style build: the runtime is copied, no path into the checkout survives', async (t) => {
  const repo = fakeCheckout();
  const dest = fresh('dest');
  const r = install(['--source', repo, '--destdir', dest, '--kernel-persist']);
  t.equal(r.status, 0, r.out);
  const lib = path.join(dest, 'usr/local/lib/nfsdcltrack-ts');
  const target = path.join(dest, 'usr/local/sbin/nfsdcltrack');
  t.ok(fs.statSync(target).mode & 0o111, 'the launcher is executable');
  t.equal(interpreter(target), '/usr/local/lib/nfsdcltrack-ts/runtime/bun', 'names the copied runtime by its final absolute path');
  const launcher = fs.readFileSync(target, 'utf8');
  t.match(launcher, /require\('\/usr\/local\/lib\/nfsdcltrack-ts\/cli\.bun\.js'\)/, 'requires the program by absolute path');
  t.notMatch(launcher, repo, 'no reference to the checkout');
  t.match(launcher, /nfsdcltrack-ts launcher/);
  t.ok(fs.statSync(path.join(lib, 'runtime/bun')).mode & 0o111, 'runtime copied and executable');
  for (const f of ['cli.bun.js', 'cli.bun.js.jsc', 'cli.js', 'nfsdcltrack', 'install-manifest']) t.ok(fs.existsSync(path.join(lib, f)), `${f} in the lib dir`);
  t.equal(fs.readFileSync(path.join(dest, 'usr/local/share/man/man8/nfsdcltrack.8'), 'utf8'), '.TH NFSDCLTRACK 8\n', 'man page');
  const conf = fs.readFileSync(path.join(dest, 'etc/modprobe.d/nfsdcltrack-ts.conf'), 'utf8');
  t.match(conf, /^options nfsd cltrack_prog=\/usr\/local\/sbin\/nfsdcltrack$/m, 'modprobe.d option');
  const manifest = fs.readFileSync(path.join(lib, 'install-manifest'), 'utf8');
  t.notMatch(manifest, dest, 'the manifest records final paths, not DESTDIR ones');

  const u = install(['--destdir', dest, '--uninstall']);
  t.equal(u.status, 0, u.out);
  t.same(tree(dest, { sizes: true }), [], 'uninstall leaves the staging root as it was (empty)');
});

t.test('PREFIX install replacing a program, pointing a (fake) kernel at it; uninstall restores both', async (t) => {
  const repo = fakeCheckout();
  const root = fresh('root');
  const prefix = path.join(root, 'usr');
  const target = path.join(root, 'sbin', 'nfsdcltrack');
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const original = '#!/bin/sh\n# the C nfsdcltrack stand-in\nexit 0\n';
  fs.writeFileSync(target, original, { mode: 0o755 });
  const sys = path.join(root, 'sys', 'module', 'nfsd', 'parameters');
  fs.mkdirSync(sys, { recursive: true });
  const param = path.join(sys, 'cltrack_prog');
  fs.writeFileSync(param, '/sbin/nfsdcltrack');
  const mpdir = path.join(root, 'etc', 'modprobe.d');
  const before = tree(root, { sizes: true });

  const args = ['--source', repo, '--prefix', prefix, '--target', target, '--sysfs-param', param, '--modprobe-dir', mpdir];
  const r = install([...args, '--kernel', '--kernel-persist']);
  t.equal(r.status, 0, r.out);
  t.match(r.out, /self-test passed/, 'the installed program ran with an empty environment');
  t.equal(fs.readFileSync(`${target}.pre-nfsdcltrack-ts`, 'utf8'), original, 'the replaced program is kept beside it');
  t.equal(fs.readFileSync(param, 'utf8'), target, 'cltrack_prog points at the new program');
  t.match(fs.readFileSync(path.join(mpdir, 'nfsdcltrack-ts.conf'), 'utf8'), `options nfsd cltrack_prog=${target}`);

  // the install stands alone: remove the checkout, run it as the kernel would
  fs.rmSync(repo, { recursive: true, force: true });
  const log = path.join(root, 'calls.log');
  t.equal(kernelRun(target, ['create', '6869'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y', FAKE_LOG: log }), 0);
  t.equal(kernelRun(target, ['check', '00'], { FAKE_LOG: log }), 255, 'exit status passed through');
  t.equal(fs.readFileSync(log, 'utf8'), 'create 6869\ncheck 00\n', 'argv reaches the program');
  fs.rmSync(log);

  // a reinstall keeps the one original, not our own launcher
  const again = install(['--source', fakeCheckout(), '--prefix', prefix, '--target', target, '--sysfs-param', param, '--kernel', '--no-selftest']);
  t.equal(again.status, 0, again.out);
  t.equal(fs.readFileSync(`${target}.pre-nfsdcltrack-ts`, 'utf8'), original, 'still the original after a reinstall');
  t.notOk(fs.existsSync(path.join(mpdir, 'nfsdcltrack-ts.conf')), 'the reinstall without --kernel-persist dropped the modprobe.d file');

  const u = install(['--prefix', prefix, '--sysfs-param', param, '--uninstall']);
  t.equal(u.status, 0, u.out);
  t.equal(fs.readFileSync(target, 'utf8'), original, 'the replaced program is back');
  t.equal(fs.readFileSync(param, 'utf8'), '/sbin/nfsdcltrack', 'cltrack_prog is back');
  t.same(tree(root, { sizes: true }), before, 'the tree is exactly as before the install');
  t.equal(install(['--prefix', prefix, '--uninstall']).status, 2, 'a second uninstall has nothing to undo');
});

t.test('uninstall points a kernel that loaded the modprobe.d option back at the default', async (t) => {
  const repo = fakeCheckout();
  const root = fresh('root');
  const param = path.join(root, 'cltrack_prog');
  const prefix = path.join(root, 'usr');
  const r = install(['--source', repo, '--prefix', prefix, '--modprobe-dir', path.join(root, 'modprobe.d'), '--kernel-persist', '--no-selftest']);
  t.equal(r.status, 0, r.out);
  // nfsd loaded later, with the option: the kernel now names our program
  fs.writeFileSync(param, path.join(prefix, 'sbin', 'nfsdcltrack'));
  const u = install(['--prefix', prefix, '--sysfs-param', param, '--uninstall']);
  t.equal(u.status, 0, u.out);
  t.equal(fs.readFileSync(param, 'utf8'), '/sbin/nfsdcltrack', 'never left pointing at a removed file');
  t.notOk(fs.existsSync(path.join(root, 'modprobe.d', 'nfsdcltrack-ts.conf')));
});

t.test('--kernel: refused for a staging install, a warning when nfsd is not loaded', async (t) => {
  const repo = fakeCheckout();
  t.equal(install(['--source', repo, '--destdir', fresh('dest'), '--kernel']).status, 1);
  const root = fresh('root');
  const r = install(['--source', repo, '--prefix', path.join(root, 'usr'), '--sysfs-param', path.join(root, 'no', 'module', 'parameters', 'cltrack_prog'), '--kernel', '--no-selftest']);
  t.equal(r.status, 0, r.out);
  t.match(r.out, /not loaded/);
});

t.test('a launcher that finds its files relative to itself is refused, nothing is installed', async (t) => {
  const repo = fakeCheckout('#!/bin/sh\nexec /usr/bin/node "$(dirname "$0")/cli.js" "$@"\n');
  const dest = fresh('dest');
  const r = install(['--source', repo, '--destdir', dest]);
  t.equal(r.status, 2);
  t.match(r.out, /relative to itself/);
  t.same(tree(dest, { sizes: true }), []);
});

t.test('the real build: staged install, then a PREFIX install that answers like nfsdcltrack', { skip: !fs.existsSync(path.join(DIST, 'nfsdcltrack')) && 'dist/ is not built (npm ci builds it)' }, async (t) => {
  const dest = fresh('dest');
  const r = install(['--destdir', dest, '--kernel-persist']);
  t.equal(r.status, 0, r.out);
  const target = path.join(dest, 'usr/local/sbin/nfsdcltrack');
  const rt = interpreter(target);
  t.match(rt, /^\//, `the launcher names its runtime by absolute path (${rt})`);
  if (rt.startsWith('/usr/local/lib/nfsdcltrack-ts/')) t.ok(fs.existsSync(path.join(dest, rt)), 'the runtime it names is installed');
  t.notMatch(fs.readFileSync(target, 'utf8'), ROOT, 'no reference to the checkout');
  for (const f of fs.readdirSync(DIST)) t.ok(fs.existsSync(path.join(dest, 'usr/local/lib/nfsdcltrack-ts', f)), `dist/${f} installed`);
  if (fs.existsSync(path.join(ROOT, 'man', 'nfsdcltrack.8'))) t.ok(fs.existsSync(path.join(dest, 'usr/local/share/man/man8/nfsdcltrack.8')), 'man page');
  t.equal(install(['--destdir', dest, '--uninstall']).status, 0);
  t.same(tree(dest, { sizes: true }), []);

  const root = fresh('root');
  const prefix = path.join(root, 'usr');
  const p = install(['--prefix', prefix]);
  t.equal(p.status, 0, p.out);
  t.match(p.out, /self-test passed/);
  const prog = path.join(prefix, 'sbin', 'nfsdcltrack');
  const store = path.join(root, 'store');
  const conf = path.join(root, 'nfs.conf');
  fs.writeFileSync(conf, '');
  const env = { NFSDCLTRACK_CONF_FILE: conf };
  t.equal(kernelRun(prog, ['-s', store, 'init'], env), 0, 'init');
  t.equal(kernelRun(prog, ['-s', store, 'create', '6162'], { ...env, NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'create');
  t.equal(kernelRun(prog, ['-s', store, 'check', '6162'], { ...env, NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'check of a known client');
  t.equal(kernelRun(prog, ['-s', store, 'check', '6163'], env), 255, 'check of an unknown client');
  t.equal(kernelRun(prog, ['-s', store, 'bogus'], env), 218, 'unknown command');
  t.equal(install(['--prefix', prefix, '--uninstall']).status, 0);
  t.same(tree(root, { sizes: true }).filter((e) => !e.startsWith('store') && !e.startsWith('nfs.conf')), [], 'only the test store is left');
});

// --- the cld daemon -------------------------------------------------------

/** A scratch nfs.conf and import sources, so that the daemon's first start reads nothing of this machine's. */
function daemonEnv(root: string): Record<string, string> {
  const conf = path.join(root, 'nfs.conf');
  fs.writeFileSync(conf, '');
  fs.mkdirSync(path.join(root, 'no-nfsdcld'), { recursive: true });
  fs.mkdirSync(path.join(root, 'no-recovery'), { recursive: true });
  return { NFSDCLTRACK_CONF_FILE: conf, NFSDCLTRACK_NFSDCLD_DIR: path.join(root, 'no-nfsdcld'), NFSDCLTRACK_RECOVERY_DIR: path.join(root, 'no-recovery') };
}

/** GetVersion (a v1 message) through a driver; the version the daemon answers, with the reply's status. */
async function getVersion(d: CldDriver): Promise<{ status: number; version: number }> {
  const r = await d.call(encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: 7 }), 20_000);
  return { status: decodeHeader(r.final).status, version: r.final[8] };
}

const HAVE_PTY = spawnSync('python3', ['-c', 'import pty, tty'], { stdio: 'ignore' }).status === 0;
const BUILT_CLD = fs.existsSync(path.join(DIST, 'nfsdcld')) && fs.existsSync(path.join(DIST, 'nfsdcld.js'));

t.test('the real build: the cld daemon, its man page and unit, staged; the staged daemon answers GetVersion', { skip: !BUILT_CLD && 'dist/nfsdcld is not built (npm ci builds it)' }, async (t) => {
  const dest = fresh('dest');
  const r = install(['--destdir', dest, '--storagedir', '/srv/nfs/state']);
  t.equal(r.status, 0, r.out);
  t.match(r.out, /systemctl mask --now nfsdcld\.service; systemctl enable --now nfsdcld-ts\.service/, 'says how to switch, and does not');
  const mode = (p: string) => (fs.statSync(path.join(dest, p)).mode & 0o7777).toString(8);
  const lib = 'usr/local/lib/nfsdcltrack-ts';
  const expected: Array<[string, string]> = [
    ['usr/local/sbin/nfsdcld-ts', '755'],
    [`${lib}/nfsdcld`, '755'],
    [`${lib}/nfsdcld.js`, '644'],
    [`${lib}/admin.js`, '644'],
    ['usr/local/share/man/man8/nfsdcld-ts.8', '644'],
    ['usr/local/lib/systemd/system/nfsdcld-ts.service', '644'],
  ];
  for (const [p, m] of expected) t.equal(fs.existsSync(path.join(dest, p)) && mode(p), m, `${p} mode ${m}`);
  t.notOk(fs.existsSync(path.join(dest, 'usr/local/sbin/nfsdcld')), 'not installed as nfsdcld (Debian owns /usr/sbin/nfsdcld)');
  t.equal(fs.readFileSync(path.join(dest, 'usr/local/share/man/man8/nfsdcld-ts.8'), 'utf8'), fs.readFileSync(path.join(ROOT, 'man', 'nfsdcld.8'), 'utf8'), 'the man page');

  const launcher = fs.readFileSync(path.join(dest, 'usr/local/sbin/nfsdcld-ts'), 'utf8');
  t.equal(interpreter(path.join(dest, 'usr/local/sbin/nfsdcld-ts')), interpreter(path.join(DIST, 'nfsdcld')), 'names the build\'s Node by absolute path');
  t.match(interpreter(path.join(dest, 'usr/local/sbin/nfsdcld-ts')), /^\//);
  t.match(launcher, /require\('\/usr\/local\/lib\/nfsdcltrack-ts\/nfsdcld\.js'\)/, 'requires the bundle by its final absolute path');
  t.notMatch(launcher, ROOT, 'no reference to the checkout');

  const unit = fs.readFileSync(path.join(dest, 'usr/local/lib/systemd/system/nfsdcld-ts.service'), 'utf8');
  // Every directive, as systemd reads it (comments and sections aside).
  const has = (line: string) => t.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
  has('Conflicts=umount.target nfsdcld.service');
  has('Requires=rpc_pipefs.target proc-fs-nfsd.mount');
  has('After=rpc_pipefs.target proc-fs-nfsd.mount systemd-remount-fs.service');
  has('RequiresMountsFor=/srv/nfs/state');
  has('Before=nfs-server.service');
  has('PartOf=nfs-server.service');
  has('StateDirectory=nfsdcltrack-ts');
  has('DefaultDependencies=no');
  has('Type=forking');
  has('ExecStart=/usr/local/sbin/nfsdcld-ts');
  has('Restart=on-failure');
  has('WantedBy=nfs-server.service');
  t.notMatch(unit, /^ExecStart=.*\s-F\b/m, 'forking: no -F');
  t.match(r.out, /not enabled/);
  t.same(tree(dest, { sizes: true }).filter((e) => /systemd\/system\/.*\.wants|nfsdcld\.service/.test(e)), [], 'nothing enabled, nothing masked');

  // The staged bundle, run through a pty as the kernel would reach it.
  if (!HAVE_PTY) t.comment('python3 with pty is missing: the staged daemon is NOT run');
  else {
    const root = fresh('cld-staged');
    // An interpreter in LIBDIR (nocaps) is named by its final path, not there yet: run the staged one, as the kernel would (#!INTERP ARG: INTERP ARG SCRIPT).
    const [interp, ...arg] = firstLine(path.join(dest, lib, 'nfsdcld')).slice(2).split(' ');
    const staged = interp.startsWith(`/${lib}/`) ? path.join(dest, interp) : interp;
    const d = await CldDriver.open(path.join(root, 'pipefs'), path.join(root, 'store'), { cmd: [staged, ...(arg.length ? [arg.join(' ')] : []), path.join(dest, lib, 'nfsdcld')], env: daemonEnv(root) });
    try {
      t.same(await getVersion(d), { status: 0, version: 2 }, 'GetVersion: version 2');
    } finally {
      await d.close();
    }
  }

  const u = install(['--destdir', dest, '--uninstall']);
  t.equal(u.status, 0, u.out);
  t.same(tree(dest, { sizes: true }), [], 'uninstall leaves nothing');
});

t.test('the real build, installed under a PREFIX: nfsdcld-ts -F answers GetVersion; without -F it detaches once serving', { skip: (!BUILT_CLD && 'dist/nfsdcld is not built') || (!HAVE_PTY && 'python3 with pty is missing') }, async (t) => {
  const root = fresh('root');
  const prefix = path.join(root, 'usr');
  const p = install(['--prefix', prefix]);
  t.equal(p.status, 0, p.out);
  const prog = path.join(prefix, 'sbin', 'nfsdcld-ts');
  const env = daemonEnv(root);

  const d = await CldDriver.open(path.join(root, 'pipefs'), path.join(root, 'store'), { cmd: [prog], env });
  try {
    t.same(await getVersion(d), { status: 0, version: 2 }, '-F: GetVersion answered with version 2');
  } finally {
    await d.close();
  }

  // As the unit runs it (Type=forking): the first process exits 0 once the detached one serves.
  const pipefs = path.join(root, 'pipefs-forking');
  fs.mkdirSync(path.join(pipefs, 'nfsd'), { recursive: true });
  const relay = spawn('python3', [path.join(ROOT, 'test', 'lib', 'pty-relay.py'), path.join(pipefs, 'nfsd', 'cld')], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    relay.stdin!.end();
  });
  await new Promise<void>((res) => relay.stderr!.on('data', (b: Buffer) => b.toString().includes('ready') && res()));
  const store = path.join(root, 'store-forking');
  const first = spawnSync(prog, ['-p', pipefs, '-s', store], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(first.status, 0, `the first process exits 0 ${first.stderr}`);
  // The detached daemon: the process whose command line names this test's pipefs.
  const pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).filter((n) => {
    try {
      return fs.readFileSync(`/proc/${n}/cmdline`, 'utf8').split('\0').includes(pipefs);
    } catch {
      return false;
    }
  });
  t.equal(pids.length, 1, 'one detached daemon');
  t.teardown(() => pids.forEach((n) => {
    try {
      process.kill(Number(n), 'SIGTERM');
    } catch {
      /* gone */
    }
  }));
  t.equal(fs.readlinkSync(`/proc/${pids[0]}/cwd`), '/', 'its working directory is /');
  const reply = new Promise<Buffer>((res) => {
    let got = Buffer.alloc(0);
    relay.stdout!.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= 1034) res(got);
    });
  });
  relay.stdin!.write(encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: 9 }));
  const r = await Promise.race([reply, new Promise<null>((res) => setTimeout(() => res(null), 20_000))]);
  t.ok(r, 'the detached daemon answers');
  if (r) t.same({ xid: decodeHeader(r).xid, status: decodeHeader(r).status, version: r[8] }, { xid: 9, status: 0, version: 2 }, 'GetVersion: version 2');
  process.kill(Number(pids[0]), 'SIGTERM');
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${pids[0]}`); i++) await new Promise((res) => setTimeout(res, 50));
  t.notOk(fs.existsSync(`/proc/${pids[0]}/cmdline`) && fs.readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8').includes(pipefs), 'SIGTERM stops it');

  t.equal(install(['--prefix', prefix, '--uninstall']).status, 0);
  t.notOk(fs.existsSync(prefix), 'uninstall removes the daemon, its man page and unit (and the prefix it created)');
});
