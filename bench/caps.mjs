// What dropping capabilities costs an upcall: dist/nfsdcltrack as built (its
// #! line runs dist/nocaps, or setpriv through env -S where nocaps is not
// built) against the same launcher without the drop (env -S for Bun's JIT
// settings, then the runtime), and against the other ways measured: setpriv
// after env -S, and (under Bun) an in-process drop through bun:ffi before the
// program is required. Interleaved (A B C D, D C B A, ...), each a v4.1 check
// of a known client on a small store with the kernel's empty environment.
// Prints each way's median, its difference from the launcher without the
// drop (of medians, and the median of the paired differences), and the load
// average (the aim: < 1 ms); then the #! chains alone, with /bin/true for
// the runtime.
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
const SETPRIV = '/usr/bin/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --';
// The launcher's parts: the NAME=VALUE words and the runtime, whichever way it drops.
const m = /^#!\S+\/nocaps (.*)$/.exec(line) ?? /^#!\/usr\/bin\/env -S (.*)$/.exec(line);
const words = m ? m[1].replace(`${SETPRIV} `, '').split(' ') : [];
const runtime = words.pop();
const vars = words.join(' ');
if (!m || (!line.includes('/nocaps ') && !line.includes(SETPRIV))) {
  console.log(`bench/caps: dist/nfsdcltrack drops no capability (${line}); nothing to compare`);
  process.exit(0);
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-caps-bench-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
// The launchers beside a copy of dist/ (they require ./cli.bun.js or ./node-launch.js).
const copy = path.join(tmp, 'dist');
fs.mkdirSync(copy);
for (const f of fs.readdirSync(dist)) {
  const st = fs.statSync(path.join(dist, f));
  if (st.isFile()) (fs.copyFileSync(path.join(dist, f), path.join(copy, f)), fs.chmodSync(path.join(copy, f), st.mode & 0o777));
}
const envS = (...w) => `#!/usr/bin/env -S ${w.filter(Boolean).join(' ')}`;
const without = vars ? envS(vars, runtime) : `#!${runtime}`;
// bun:ffi: libc's prctl and capset, as cltrack_set_caps does (the kernel empties the ambient set with capset's).
const FFI =
  "{const{symbols:c}=require('bun:ffi').dlopen('libc.so.6',{prctl:{args:['i32','u64','u64','u64','u64'],returns:'i32'},capset:{args:['ptr','ptr'],returns:'i32'}});" +
  "for(let i=0;c.prctl(23,i,0,0,0)>=0;i++)if(c.prctl(24,i,0,0,0))throw new Error('PR_CAPBSET_DROP '+i);" +
  "if(c.capset(new Uint32Array([0x20080522,0]),new Uint32Array(6)))throw new Error('capset');}";
const ways = { without: [without, ...rest] };
if (fs.existsSync(path.join(copy, 'nocaps'))) ways.nocaps = [`#!${path.join(copy, 'nocaps')} ${vars ? `${vars} ` : ''}${runtime}`, ...rest];
if (spawnSync('/usr/bin/setpriv', [...SETPRIV.split(' '), '/bin/true']).status === 0) ways.setpriv = [envS(vars, SETPRIV, runtime), ...rest];
if (/\/bun$/.test(runtime)) ways['bun:ffi'] = [without, FFI + rest[0], ...rest.slice(1)];
const bins = {};
for (const [k, text] of Object.entries(ways)) fs.writeFileSync((bins[k] = path.join(copy, `launcher-${k.replace(':', '-')}`)), text.join('\n'), { mode: 0o755 });
const shipped = Object.keys(ways).find((k) => k !== 'without' && ways[k][0] === line.replace(path.join(dist, 'nocaps'), path.join(copy, 'nocaps')));

const store = path.join(tmp, 'store');
const env = { NFSDCLTRACK_END_GRACE_FILE: path.join(tmp, 'end_grace'), NFSDCLTRACK_CONF_FILE: path.join(tmp, 'nfs.conf'), NFSDCLTRACK_SYSLOG_SOCKET: path.join(tmp, 'no-syslog') };
const run = (bin, args, extra = {}) => spawnSync(bin, ['-s', store, ...args], { env: { ...env, ...extra }, stdio: 'ignore' }).status;
run(bins.without, ['init']);
for (let i = 0; i < 10; i++) run(bins.without, ['create', (0x1000 + i).toString(16)], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' });
const time = (bin) => {
  const t0 = process.hrtime.bigint();
  const s = run(bin, ['check', '1003'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (s !== 0) throw new Error(`${bin} check: exit ${s}`);
  return ms;
};
const names = Object.keys(bins);
for (let i = 0; i < 3; i++) for (const k of names) time(bins[k]); // warm the page cache
const times = Object.fromEntries(names.map((k) => [k, []]));
for (let i = 0; i < runs; i++) for (const k of i % 2 ? [...names].reverse() : names) times[k].push(time(bins[k]));
const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(`bench/caps: v4.1 check, ${runs} interleaved runs each (${/\/bun$/.test(runtime) ? 'Bun' : 'Node'}), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const base = median(times.without);
const signed = (x) => `${x < 0 ? '' : '+'}${x.toFixed(2)}`;
for (const k of names) {
  const label = `${k === shipped ? 'shipped: ' : ''}${k}`.padEnd(20);
  if (k === 'without') console.log(`  ${label} median ${base.toFixed(2)} ms (no capability dropped)`);
  else {
    // The median of the paired differences is less sensitive to drift than the difference of medians.
    const pairs = median(times[k].map((x, i) => x - times.without[i]));
    console.log(`  ${label} median ${median(times[k]).toFixed(2)} ms, ${signed(median(times[k]) - base)} ms of medians, ${signed(pairs)} ms median of pairs${k === shipped ? ' (aim: < 1 ms)' : ''}`);
  }
}

// The #! chains alone, with /bin/true for the runtime (the upcall's noise
// left out; bun:ffi has no chain): what each way adds to an exec.
const chains = { plain: '#!/bin/true' };
for (const k of names.filter((k) => k !== 'bun:ffi')) chains[k] = `${ways[k][0].slice(0, -runtime.length)}/bin/true`; // the runtime is the line's last word
const chainRuns = 4 * runs + 1;
const chainTimes = Object.fromEntries(Object.keys(chains).map((k) => [k, []]));
for (const [k, text] of Object.entries(chains)) fs.writeFileSync(path.join(copy, `chain-${k}`), `${text}\n`, { mode: 0o755 });
const chainNames = Object.keys(chains);
for (let i = 0; i < chainRuns; i++) {
  for (const k of i % 2 ? [...chainNames].reverse() : chainNames) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(path.join(copy, `chain-${k}`), [], { env: {}, stdio: 'ignore' });
    chainTimes[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`chain ${k} (${chains[k]}): exit ${r.status}`);
  }
}
console.log(`  the #! chain alone (runtime: /bin/true), ${chainRuns} interleaved runs each:`);
for (const k of chainNames) {
  const pairs = median(chainTimes[k].map((x, i) => x - chainTimes.plain[i]));
  console.log(`    ${k.padEnd(18)} median ${median(chainTimes[k]).toFixed(2)} ms${k === 'plain' ? ' (#!/bin/true)' : `, ${signed(pairs)} ms median of pairs against #!/bin/true`}`);
}

