// scripts/package.sh: the .deb, installed into a scratch root with a scratch
// dpkg database (dpkg --root, maintainer scripts run chrootless: they honour
// DPKG_ROOT), over a fake nfs-kernel-server that owns /sbin/nfsdcltrack;
// every file and mode checked; the C program diverted, then back after
// removal. And reproducibility: two builds, the same bytes. No service is
// started, nothing outside the temporary directories is touched.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { tree } from './lib/tree';

// tap's coverage hooks stay out of the build and the programs it runs: they are measured by their own tests.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('NODE_V8_COVERAGE') && !k.startsWith('_TAPJS')));

const ROOT = path.resolve(__dirname, '..');
const SCRIPT = path.join(ROOT, 'scripts', 'package.sh');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-package-'));
t.teardown(() => fs.rmSync(TMP, { recursive: true, force: true }));
const NAME = 'nfsdcltrack-ts';
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const DEB = `${NAME}_${VERSION}_amd64.deb`;

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const BUN = fs.existsSync(path.join(ROOT, 'node_modules/@oven/bun-linux-x64/bin/bun'));
const skip =
  (!have('dpkg-deb') && 'dpkg-deb is missing') ||
  (spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim() !== 'amd64' && 'not amd64') ||
  (!BUN && 'no Bun in node_modules (the package ships it)') ||
  (process.getuid?.() !== 0 && 'dpkg --root needs root');

/** package.sh --out DIR, asynchronously (the two builds run side by side). */
function build(out: string): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', [SCRIPT, '--out', out], { env: { ...cleanEnv, SOURCE_DATE_EPOCH: '1700000000', TMPDIR: TMP } });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.stderr.on('data', (d) => (text += d));
    p.on('close', (status) => resolve({ status, out: text }));
  });
}
function run(cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...cleanEnv, ...env }, timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const FAKE_C = '#!/bin/sh\n# stands for nfs-kernel-server\'s C nfsdcltrack\nexit 0\n';
/** A tiny fake nfs-kernel-server owning /sbin/nfsdcltrack and its man page, as Debian 12's does. */
function fakeNfsKernelServer(): string {
  const r = path.join(TMP, 'fake-nks');
  fs.mkdirSync(path.join(r, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(r, 'sbin'));
  fs.mkdirSync(path.join(r, 'usr/share/man/man8'), { recursive: true });
  fs.writeFileSync(path.join(r, 'sbin/nfsdcltrack'), FAKE_C, { mode: 0o755 });
  fs.writeFileSync(path.join(r, 'usr/share/man/man8/nfsdcltrack.8.gz'), 'the C program\'s man page');
  fs.writeFileSync(
    path.join(r, 'DEBIAN/control'),
    'Package: nfs-kernel-server\nVersion: 1:2.6.2-4\nArchitecture: amd64\nMaintainer: test <test@example.org>\nDescription: fake\n',
  );
  const deb = path.join(TMP, 'nfs-kernel-server_fake.deb');
  const b = run('dpkg-deb', ['--root-owner-group', '-Znone', '--build', r, deb]);
  if (b.status !== 0) throw new Error(b.out);
  return deb;
}
function scratchRoot(): string {
  const r = path.join(TMP, 'root');
  for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'sbin', 'usr/share/man/man8']) fs.mkdirSync(path.join(r, d), { recursive: true });
  fs.writeFileSync(path.join(r, 'var/lib/dpkg/status'), '');
  fs.writeFileSync(path.join(r, 'var/lib/dpkg/available'), '');
  return r;
}
/** dpkg on the scratch root; maintainer scripts run without chroot, with DPKG_ROOT set. */
const dpkg = (root: string, ...args: string[]) =>
  run('dpkg', [`--root=${root}`, '--force-script-chrootless', '--force-depends', '--log=/dev/null', ...args], { DPKG_ROOT: root });
const diversions = (root: string) => run('dpkg-divert', [`--root=${root}`, '--list']).out;

const EXPECTED = [
  'lib/ 755',
  'lib/systemd/ 755',
  'lib/systemd/system/ 755',
  'lib/systemd/system/nfsdcld-ts.service 644',
  'sbin/ 755',
  'sbin/nfsdcltrack 755',
  'sbin/nfsdcltrack.nfs-utils 755',
  'usr/ 755',
  'usr/lib/ 755',
  `usr/lib/${NAME}/ 755`,
  `usr/lib/${NAME}/admin.js 644`,
  `usr/lib/${NAME}/cli.bun.js 644`,
  `usr/lib/${NAME}/cli.bun.js.jsc 644`,
  `usr/lib/${NAME}/nfsdcld 755`,
  `usr/lib/${NAME}/nfsdcld.js 644`,
  `usr/lib/${NAME}/nfsdcltrack 755`,
  `usr/lib/${NAME}/nocaps 755`,
  `usr/lib/${NAME}/runtime/ 755`,
  `usr/lib/${NAME}/runtime/bun 755`,
  'usr/sbin/ 755',
  'usr/sbin/nfsdcld-ts 755',
  'usr/share/ 755',
  'usr/share/doc/ 755',
  `usr/share/doc/${NAME}/ 755`,
  `usr/share/doc/${NAME}/changelog.gz 644`,
  `usr/share/doc/${NAME}/copyright 644`,
  'usr/share/lintian/ 755',
  'usr/share/lintian/overrides/ 755',
  `usr/share/lintian/overrides/${NAME} 644`,
  'usr/share/man/ 755',
  'usr/share/man/man8/ 755',
  'usr/share/man/man8/nfsdcld-ts.8.gz 644',
  'usr/share/man/man8/nfsdcltrack.8.gz 644',
  'usr/share/man/man8/nfsdcltrack.nfs-utils.8.gz 644',
];

t.test('the package: built twice, byte-identical; installed over nfs-kernel-server by diversion; removed, the C program back', { skip }, async (t) => {
  const [a, b] = await Promise.all([build(path.join(TMP, 'out-a')), build(path.join(TMP, 'out-b'))]);
  t.equal(a.status, 0, a.out);
  t.equal(b.status, 0, b.out);
  const debA = path.join(TMP, 'out-a', DEB);
  const debB = path.join(TMP, 'out-b', DEB);
  t.ok(fs.existsSync(debA), `named ${DEB}`);
  if (!fs.existsSync(debA) || !fs.existsSync(debB)) return;

  // ---- reproducible: the whole .deb, and the bundles inside it
  const bytesA = fs.readFileSync(debA);
  t.ok(bytesA.equals(fs.readFileSync(debB)), 'two builds give the same .deb, byte for byte');
  const xa = path.join(TMP, 'x-a');
  const xb = path.join(TMP, 'x-b');
  t.equal(run('dpkg-deb', ['-x', debA, xa]).status, 0);
  t.equal(run('dpkg-deb', ['-x', debB, xb]).status, 0);
  for (const f of ['cli.bun.js', 'cli.bun.js.jsc', 'admin.js', 'nfsdcld.js']) {
    t.ok(fs.readFileSync(path.join(xa, 'usr/lib', NAME, f)).equals(fs.readFileSync(path.join(xb, 'usr/lib', NAME, f))), `${f}: byte-identical between builds`);
  }
  const tv = run('sh', ['-c', `dpkg-deb --fsys-tarfile '${debA}' | tar -tv --full-time`]).out.trim().split('\n');
  t.ok(tv.every((l) => / root\/root /.test(l)), 'every member root/root');
  t.ok(tv.every((l) => l.includes('2023-11-14 22:13:20')), 'every mtime is SOURCE_DATE_EPOCH');
  const names = tv.map((l) => l.replace(/^.* \.\//, './'));
  t.same(names, [...names].sort(), 'the tar is sorted by name');
  const info = run('dpkg-deb', ['-f', debA]).out;
  t.match(info, /^Package: nfsdcltrack-ts$/m);
  t.match(info, /^Depends: libc6 \(>= [\d.]+\)$/m);
  t.match(info, /^Recommends: nodejs \(>= 20\)$/m);

  // ---- launchers name the packaged runtime, through the packaged nocaps
  const launcher = fs.readFileSync(path.join(xa, 'sbin/nfsdcltrack'), 'utf8').split('\n')[0];
  t.match(launcher, /^#!\/usr\/lib\/nfsdcltrack-ts\/nocaps (BUN_JSC_\w+=\d+ )+\/usr\/lib\/nfsdcltrack-ts\/runtime\/bun$/);
  t.ok(Buffer.byteLength(launcher) <= 255, 'the #! line fits the kernel\'s 255 bytes');
  // the daemon keeps CAP_DAC_READ_SEARCH alone (lib/cld/carry.ts), through util-linux's setpriv (Essential)
  t.match(fs.readFileSync(path.join(xa, 'usr/sbin/nfsdcld-ts'), 'utf8').split('\n')[0], /^#!\/usr\/bin\/env -S \/usr\/bin\/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,\+dac_read_search -- \/usr\/bin\/node$/);
  const nocaps = run(path.join(xa, 'usr/lib', NAME, 'nocaps'), ['/bin/grep', '^Cap', '/proc/self/status']);
  t.match(nocaps.out, /^CapInh:\s+0+\nCapPrm:\s+0+\nCapEff:\s+0+\nCapBnd:\s+0+\nCapAmb:\s+0+\n$/, 'the packaged nocaps empties every set');
  const unit = fs.readFileSync(path.join(xa, 'lib/systemd/system/nfsdcld-ts.service'), 'utf8');
  t.match(unit, /^ExecStart=\/usr\/sbin\/nfsdcld-ts$/m);
  t.match(unit, /^CapabilityBoundingSet=CAP_DAC_READ_SEARCH$/m);
  const bundle = run(path.join(xa, 'usr/lib', NAME, 'runtime/bun'), [path.join(xa, 'usr/lib', NAME, 'cli.bun.js'), '-h'], {});
  t.equal(bundle.status, 1, 'the packaged Bun runs the packaged bundle (-h: usage, 1)');
  t.match(bundle.out, /^Usage:/m);

  // ---- install over a fake nfs-kernel-server, in a scratch root
  const root = scratchRoot();
  const nks = fakeNfsKernelServer();
  let r = dpkg(root, '-i', nks);
  t.equal(r.status, 0, `fake nfs-kernel-server installed: ${r.out}`);
  r = dpkg(root, '-i', debA);
  t.equal(r.status, 0, `installed: ${r.out}`);
  t.same(tree(root).filter((l) => !l.startsWith('var/')), EXPECTED, 'every file, with its mode');
  t.equal(fs.readFileSync(path.join(root, 'sbin/nfsdcltrack.nfs-utils'), 'utf8'), FAKE_C, 'the C program is kept, renamed');
  t.match(fs.readFileSync(path.join(root, 'sbin/nfsdcltrack'), 'utf8'), /nfsdcltrack-ts launcher/, '/sbin/nfsdcltrack is ours');
  const div = diversions(root);
  t.match(div, /diversion of \/sbin\/nfsdcltrack to \/sbin\/nfsdcltrack\.nfs-utils by nfsdcltrack-ts/);
  t.match(div, /diversion of \/usr\/share\/man\/man8\/nfsdcltrack\.8\.gz to \/usr\/share\/man\/man8\/nfsdcltrack\.nfs-utils\.8\.gz by nfsdcltrack-ts/);
  t.match(run('dpkg-query', [`--root=${root}`, '-S', '/sbin/nfsdcltrack']).out, /diversion by nfsdcltrack-ts/);
  t.notOk(fs.existsSync(path.join(root, 'etc/systemd')), 'nothing enabled, nothing masked');
  // an upgrade of nfs-kernel-server while diverted lands beside ours
  r = dpkg(root, '-i', nks);
  t.equal(r.status, 0, `fake nfs-kernel-server reinstalled: ${r.out}`);
  t.match(fs.readFileSync(path.join(root, 'sbin/nfsdcltrack'), 'utf8'), /nfsdcltrack-ts launcher/, 'ours still in place');
  t.equal(fs.readFileSync(path.join(root, 'sbin/nfsdcltrack.nfs-utils'), 'utf8'), FAKE_C);

  // ---- remove: diversion gone, the C program back
  r = dpkg(root, '--purge', NAME);
  t.equal(r.status, 0, `purged: ${r.out}`);
  t.equal(fs.readFileSync(path.join(root, 'sbin/nfsdcltrack'), 'utf8'), FAKE_C, 'the C program is back at /sbin/nfsdcltrack');
  t.equal(fs.statSync(path.join(root, 'sbin/nfsdcltrack')).mode & 0o7777, 0o755);
  t.equal(fs.readFileSync(path.join(root, 'usr/share/man/man8/nfsdcltrack.8.gz'), 'utf8'), "the C program's man page");
  t.notOk(fs.existsSync(path.join(root, 'sbin/nfsdcltrack.nfs-utils')));
  t.notMatch(diversions(root), /nfsdcltrack-ts/, 'no diversion left');
  t.same(
    tree(root).filter((l) => !l.startsWith('var/')),
    ['sbin/ 755', 'sbin/nfsdcltrack 755', 'usr/ 755', 'usr/share/ 755', 'usr/share/man/ 755', 'usr/share/man/man8/ 755', 'usr/share/man/man8/nfsdcltrack.8.gz 644'],
    'only nfs-kernel-server\'s files are left',
  );
});
