// What dropping capabilities costs an upcall: dist/nfsdcltrack as built
// (its #! line runs /usr/bin/setpriv before the runtime) against the same
// launcher with the setpriv part taken out, interleaved (A B A B ...), each a
// v4.1 check of a known client on a small store with the kernel's empty
// environment. Prints the medians and their difference (the aim: < 1 ms).
//
//   node bench/caps.mjs [RUNS]     (default 41; npm run bench runs it)
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const dist = path.join(root, 'dist');
const runs = Math.max(31, Number(process.argv[2]) || 41);
const launcher = fs.readFileSync(path.join(dist, 'nfsdcltrack'), 'utf8');
const [line, ...rest] = launcher.split('\n');
const SETPRIV = /\/usr\/bin\/setpriv (?:--[\w-]+=-?\w+ )*-- /;
if (!SETPRIV.test(line)) {
  console.log(`bench/caps: dist/nfsdcltrack does not run setpriv (${line}); nothing to compare`);
  process.exit(0);
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-caps-bench-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
// Both launchers beside a copy of dist/ (they require ./cli.bun.js or ./node-launch.js).
const copy = path.join(tmp, 'dist');
fs.mkdirSync(copy);
for (const f of fs.readdirSync(dist)) if (fs.statSync(path.join(dist, f)).isFile()) fs.copyFileSync(path.join(dist, f), path.join(copy, f));
const withCaps = path.join(copy, 'with-setpriv');
const without = path.join(copy, 'without-setpriv');
fs.writeFileSync(withCaps, launcher, { mode: 0o755 });
let plain = line.replace(SETPRIV, '');
if (/^#!\/usr\/bin\/env -S \S+$/.test(plain)) plain = `#!${plain.split(' ').pop()}`; // nothing left for env -S to do
fs.writeFileSync(without, [plain, ...rest].join('\n'), { mode: 0o755 });

const store = path.join(tmp, 'store');
const env = { NFSDCLTRACK_END_GRACE_FILE: path.join(tmp, 'end_grace'), NFSDCLTRACK_CONF_FILE: path.join(tmp, 'nfs.conf'), NFSDCLTRACK_SYSLOG_SOCKET: path.join(tmp, 'no-syslog') };
const run = (bin, args, extra = {}) => spawnSync(bin, ['-s', store, ...args], { env: { ...env, ...extra }, stdio: 'ignore' }).status;
run(withCaps, ['init']);
for (let i = 0; i < 10; i++) run(withCaps, ['create', (0x1000 + i).toString(16)], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' });
const time = (bin) => {
  const t0 = process.hrtime.bigint();
  const s = run(bin, ['check', '1003'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (s !== 0) throw new Error(`${bin} check: exit ${s}`);
  return ms;
};
for (let i = 0; i < 3; i++) time(withCaps), time(without); // warm the page cache
const a = [];
const b = [];
for (let i = 0; i < runs; i++) {
  if (i % 2) (b.push(time(without)), a.push(time(withCaps)));
  else (a.push(time(withCaps)), b.push(time(without)));
}
const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ma = median(a);
const mb = median(b);
// The median of the paired differences, less sensitive to drift than the difference of medians.
const md = median(a.map((x, i) => x - b[i]));
console.log(`bench/caps: v4.1 check, ${runs} interleaved runs each (${line.includes('bun') ? 'Bun' : 'Node'})`);
console.log(`  with setpriv (empty capability sets): median ${ma.toFixed(2)} ms`);
console.log(`  without setpriv:                      median ${mb.toFixed(2)} ms`);
console.log(`  difference: ${(ma - mb).toFixed(2)} ms of medians, ${md.toFixed(2)} ms median of pairs (aim: < 1 ms)`);
