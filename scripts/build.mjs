// Build: one bundled file for the upcall (dist/cli.js), the rarely used admin
// commands in a bundle of their own (dist/admin.js, loaded only when asked
// for), and dist/nfsdcltrack, the launcher that names its runtime by absolute
// path because the kernel runs us with no PATH.
//
// Runtime (docs/performance.md has the numbers): when Bun's npm package is
// installed (@oven/bun-linux-x64, an optional dependency that ships the
// binary, nothing downloaded), the launcher runs Bun, which starts the same
// program in a fraction of Node's time; the bundle is then also compiled by
// `bun build --bytecode` into dist/cli.bun.js (+ .jsc, JavaScriptCore's
// bytecode, so Bun neither transpiles nor parses it at start-up). Otherwise,
// or with NFSDCLTRACK_RUNTIME=node, the launcher runs Node (the one running
// this build), through dist/node-launch.js, which compiles dist/cli.js with a
// V8 code cache written here. dist/cli.js itself runs under either runtime:
// `node dist/cli.js` and `bun dist/cli.js` are what the tests use.
//
// Every file the launcher loads is a plain file directly in dist/ and named by
// a './' require, so that scripts/install.sh can copy dist/ and rewrite them.
import * as esbuild from 'esbuild';
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nocapsElf } from './nocaps.mjs';

const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
// NFSDCLTRACK_DIST: build into another directory than dist/ (scripts/package.sh
// does, so that a package build never swaps files under tests running from dist/).
const finalDist = process.env.NFSDCLTRACK_DIST ? path.resolve(process.env.NFSDCLTRACK_DIST) : path.join(root, 'dist');
fs.mkdirSync(finalDist, { recursive: true });
// Everything is built in a private directory and then renamed into dist/ file
// by file, the launcher last: tests (or an upcall) running from dist/ while a
// build runs never find a file missing or half-written.
const dist = fs.mkdtempSync(path.join(finalDist, '.build-'));
process.on('exit', () => fs.rmSync(dist, { recursive: true, force: true }));
const say = (m) => process.stderr.write(`build: ${m}\n`);

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  legalComments: 'none',
  logLevel: 'warning',
  // Smaller source parses faster. Function names are not kept (keepNames
  // cost 0.6 ms a start under Bun; nothing reads them, and our messages carry
  // no stack traces). NFSDCLTRACK_MINIFY=0 for a readable bundle to profile.
  minify: process.env.NFSDCLTRACK_MINIFY !== '0',
};
const adminExternal = {
  name: 'admin-external',
  setup(build) {
    build.onResolve({ filter: /^\.\/lib\/admin$/ }, () => ({ path: './admin.js', external: true }));
  },
};
// `import * as fs from 'fs'` becomes `__toESM(require("fs"))` in a CommonJS
// bundle: a copy of every property of the module, for each importing file.
// Under Bun that copy materialises its lazy fs properties, ~3 ms per process.
// Our own sources get the equivalent `import fs = require('fs')` instead
// (same object, no copy); the text of the files is not changed.
const NODE_BUILTIN_NS = /^import \* as ([A-Za-z_$][\w$]*) from '((?:node:)?(?:fs|path|os|child_process|crypto|util|events|assert))';$/gm;
const directBuiltins = {
  name: 'direct-builtins',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = fs.readFileSync(args.path, 'utf8');
      return { contents: text.replace(NODE_BUILTIN_NS, "import $1 = require('$2');"), loader: 'ts' };
    });
  },
};

const nodeRuntime = process.execPath;
const bunCandidates = ['@oven/bun-linux-x64', '@oven/bun-linux-x64-baseline', '@oven/bun-linux-aarch64'].map((p) =>
  path.join(root, 'node_modules', p, 'bin/bun'),
);
const bunRuntime = bunCandidates.find((p) => {
  try {
    return fs.statSync(p).isFile() && spawnSync(p, ['--version'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
});
const wanted = process.env.NFSDCLTRACK_RUNTIME; // 'node' | 'bun' | unset (Bun when present)
if (wanted === 'bun' && !bunRuntime) throw new Error('NFSDCLTRACK_RUNTIME=bun, but no Bun binary in node_modules/@oven');

await esbuild.build({
  ...common,
  absWorkingDir: root,
  entryPoints: ['cli.ts'],
  outfile: path.join(dist, 'cli.js'),
  banner: { js: `#!${nodeRuntime}` },
  plugins: [adminExternal, directBuiltins],
});
await esbuild.build({ ...common, absWorkingDir: root, entryPoints: ['lib/admin/index.ts'], outfile: path.join(dist, 'admin.js'), plugins: [directBuiltins] });
fs.chmodSync(path.join(dist, 'cli.js'), 0o755);
// The cld daemon (dist/nfsdcld.js, run by the dist/nfsdcld launcher) runs
// Node: it starts once, so start-up does not count; Node's steady-state
// latency, memory and stream support for the pipe decided it
// (docs/performance.md). Its first-start import shares admin.js.
await esbuild.build({ ...common, absWorkingDir: root, entryPoints: ['nfsdcld.ts'], outfile: path.join(dist, 'nfsdcld.js'), plugins: [adminExternal, directBuiltins] });

/**
 * The input of `bun build --bytecode`: Bun writes its absolute path into both
 * cli.bun.js (as __filename) and the .jsc (as the script's origin), so a
 * random temporary name would make every build differ. It is named by the
 * hash of its content instead (reproducible: the same source always gives
 * the same bytes), and the directory doubles as a lock between two builds of
 * the same source (it is removed after use; one left by a killed build for
 * more than 2 minutes is taken over, if it is ours and private).
 */
function withBunInput(text, fn) {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const dir = path.join('/tmp', `nfsdcltrack-bunsrc-${hash}`);
  for (let waited = 0; ; waited++) {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const st = fs.lstatSync(dir, { throwIfNoEntry: false });
      if (!st) continue;
      if (!st.isDirectory() || st.uid !== process.getuid() || (st.mode & 0o077) !== 0) throw new Error(`${dir} exists and is not a private directory of ours: remove it`);
      if (Date.now() - st.mtimeMs > 120_000 || waited > 1200) fs.rmSync(dir, { recursive: true, force: true });
      else spawnSync('sleep', ['0.1']);
    }
  }
  try {
    const input = path.join(dir, 'cli.js');
    fs.writeFileSync(input, text, { mode: 0o600 });
    return fn(input);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** dist/cli.bun.js + dist/cli.bun.js.jsc: the same bundle, as Bun bytecode. */
function buildBunBytecode() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-bun-'));
  try {
    // Without the #! line: Bun looks for its "// @bun" pragma on the first line.
    const text = fs.readFileSync(path.join(dist, 'cli.js'), 'utf8').replace(/^#![^\n]*\n/, '');
    const out = path.join(tmp, 'out');
    const r = withBunInput(text, (input) =>
      spawnSync(
        bunRuntime,
        ['build', input, '--target=bun', '--format=cjs', '--bytecode', '--external', '*/admin.js', `--outdir=${out}`],
        { encoding: 'utf8', env: { ...process.env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: '0' } },
      ),
    );
    if (r.status !== 0) throw new Error(`bun build failed: ${r.stderr || r.stdout}`);
    // (Bun writes the input's path into the bundle as __filename; only
    // write-file-atomic reads it, as salt for temporary file names.)
    const js = fs.readFileSync(path.join(out, 'cli.js'), 'utf8');
    const jsc = fs.readFileSync(path.join(out, 'cli.js.jsc'));
    if (!js.startsWith('// @bun @bytecode')) throw new Error('bun build wrote no bytecode pragma');
    fs.writeFileSync(path.join(dist, 'cli.bun.js'), js, { mode: 0o644 });
    fs.writeFileSync(path.join(dist, 'cli.bun.js.jsc'), jsc, { mode: 0o644 });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** dist/node-launch.js + dist/cli.js.v8cache: Node with a code cache. */
function buildNodeLauncher() {
  const loader = `'use strict';
// Runs cli.js under Node with a V8 code cache (cli.js.v8cache, written by
// scripts/build.mjs). V8 rejects a cache made by another Node version, other
// flags or another source length; the script is then compiled as usual.
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');
const file = path.join(__dirname, 'cli.js');
const cacheFile = file + '.v8cache';
let src = fs.readFileSync(file, 'utf8');
if (src.startsWith('#!')) src = '//' + src.slice(2);
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {}
const script = new vm.Script(Module.wrap(src), { filename: file, cachedData });
if (process.env.NFSDCLTRACK_WRITE_CODE_CACHE === cacheFile) {
  process.on('exit', () => fs.writeFileSync(cacheFile, script.createCachedData(), { mode: 0o644 }));
}
const mod = new Module(file, module);
mod.filename = file;
mod.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, __dirname);
`;
  const launch = path.join(dist, 'node-launch.js');
  fs.writeFileSync(launch, loader, { mode: 0o644 });
  // The cache holds what one run compiled: run the upcall's paths (create,
  // v4.0 check, session check, remove) on a scratch store, each run adding to it.
  const cacheFile = path.join(dist, 'cli.js.v8cache');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-cache-'));
  const env = { NFSDCLTRACK_WRITE_CODE_CACHE: cacheFile, NFSDCLTRACK_END_GRACE_FILE: path.join(scratch, 'end_grace'), NFSDCLTRACK_CONF_FILE: path.join(scratch, 'nfs.conf') };
  try {
    const store = path.join(scratch, 'store');
    for (const [args, extra] of [
      [['init'], { NFSDCLTRACK_GRACE_START: '1' }],
      [['create', '0102'], {}],
      [['check', '0102'], {}],
      [['create', '0304'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y', NFSDCLTRACK_GRACE_START: '1' }],
      [['check', '0304'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }],
      [['remove', '0102'], {}],
    ]) {
      spawnSync(nodeRuntime, [launch, '-s', store, ...args], { env: { ...env, ...extra }, stdio: 'ignore' });
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  if (!fs.existsSync(cacheFile)) say('warning: no V8 code cache was written; Node will compile cli.js at each start');
}

/**
 * Capabilities. The kernel starts the upcall as root with every capability,
 * and the client id it passes comes from the network; nfs-utils' programs
 * drop them all first thing (cltrack_set_caps, cld_set_caps; a failure is
 * fatal). Ours do it before their runtime starts, in the launcher's #! line:
 * dist/nocaps (scripts/nocaps.S; its bytes come from scripts/nocaps.mjs, no
 * compiler needed) is the interpreter; it empties the bounding set, then the
 * permitted, effective, inheritable and ambient sets, and execs the runtime
 * with the line's NAME=VALUE words in its environment. Root with an empty
 * bounding set gets empty sets at that exec (and at every later one), and
 * stays uid 0, so it still owns the root-owned 0700 storage dir, the
 * recovery dir, /proc/fs/nfsd/v4_end_grace and the pipe: no change of uid,
 * no securebits (nothing is left to keep or regain).
 * It costs nothing measurable: it stands in for the /usr/bin/env -S that
 * sets Bun's JIT thresholds, a static exec of a few hundred bytes instead of
 * a dynamically linked one (bench/caps.mjs, docs/performance.md). The
 * alternatives measured were dearer: util-linux's setpriv after env -S
 * (about +1.1 to +1.5 ms an upcall: one more dynamically linked exec) and an
 * in-process drop through bun:ffi's dlopen of libc (about +1.1 to +1.4 ms:
 * loading the FFI module and compiling its trampolines).
 * dist/nocaps is x86-64 code: elsewhere (or with NFSDCLTRACK_NOCAPS=0, which
 * test/caps.ts uses to test that way too), the launchers fall back on setpriv
 * through env -S, as they did before (util-linux >= 2.32; the same sets
 * emptied).
 */
const SETPRIV = '/usr/bin/setpriv';
const SETPRIV_ARGS = '--inh-caps=-all --ambient-caps=-all --bounding-set=-all --';
const NOCAPS = path.join(finalDist, 'nocaps'); // named by absolute path, like the runtime
const nocaps = process.arch === 'x64' && process.env.NFSDCLTRACK_NOCAPS !== '0' && (() => {
  fs.writeFileSync(path.join(dist, 'nocaps'), nocapsElf(), { mode: 0o755 });
  return spawnSync(path.join(dist, 'nocaps'), ['/bin/true']).status === 0;
})();
const envS = spawnSync('/usr/bin/env', ['-S', 'true']).status === 0;
const setpriv = !nocaps && envS && process.env.NFSDCLTRACK_SETPRIV !== '0' && spawnSync(SETPRIV, [...SETPRIV_ARGS.split(' '), '/bin/true']).status === 0;
if (!nocaps) fs.rmSync(path.join(dist, 'nocaps'), { force: true });
if (!nocaps && !envS) say('/usr/bin/env -S is not usable here: the launchers can neither drop capabilities nor set JIT thresholds');
else if (!nocaps && !setpriv && process.env.NFSDCLTRACK_SETPRIV !== '0') say(`neither dist/nocaps (x86-64) nor ${SETPRIV} is usable here: the launchers keep every capability root has`);

/**
 * A launcher's interpreter line: nocaps, or env -S running setpriv, then
 * the runtime with `vars` in its environment. The kernel reads at most 255
 * bytes of it: when the whole line does not fit, the variables are dropped
 * first (they only tune speed), then the capability drop; with neither
 * nocaps nor env -S, the plain runtime.
 */
function shebang(runtime, vars = '') {
  const v = vars ? `${vars} ` : '';
  const [head, drop] = nocaps ? [`#!${NOCAPS} `, ''] : ['#!/usr/bin/env -S ', setpriv ? `${SETPRIV} ${SETPRIV_ARGS} ` : ''];
  const tries = [];
  if (nocaps || (envS && (vars || drop))) tries.push(`${head}${v}${drop}${runtime}`);
  if (vars && (nocaps || drop)) tries.push(`${head}${drop}${runtime}`);
  const fit = tries.find((line) => Buffer.byteLength(line) <= 255);
  if (tries.length && fit !== tries[0]) say(`the #! line for ${runtime} would pass 255 bytes: ${fit ? 'without the JIT settings' : `plain ${runtime}, capabilities kept`}`);
  return fit ?? `#!${runtime}`;
}

/**
 * The upcall's launcher under Bun. An upcall runs each function a handful of
 * times, yet JavaScriptCore's baseline JIT compiles whatever ran a few
 * hundred times (the CRC and decoding loops over the journal): ~12% of an
 * upcall's CPU time, compiling code that is then run once
 * (docs/performance.md). Its thresholds are raised through the environment,
 * the only way to set them; a compaction's loops still reach the JIT.
 */
const BUN_JIT_ENV = 'BUN_JSC_thresholdForJITAfterWarmUp=100000 BUN_JSC_thresholdForJITSoon=100000';

buildNodeLauncher();
const useBun = bunRuntime && wanted !== 'node';
if (useBun) buildBunBytecode();
const launcher = path.join(dist, 'nfsdcltrack');
const launcherText = useBun ? `${shebang(bunRuntime, BUN_JIT_ENV)}\nrequire('./cli.bun.js');\n` : `${shebang(nodeRuntime)}\nrequire('./node-launch.js');\n`;
fs.writeFileSync(launcher, launcherText, { mode: 0o755 });
fs.chmodSync(launcher, 0o755);
// The daemon's launcher runs Node unless NFSDCLD_RUNTIME=bun (scripts/package.sh,
// whose package ships Bun only; the daemon's suites pass under both).
const daemonRuntime = process.env.NFSDCLD_RUNTIME === 'bun' ? bunRuntime : nodeRuntime;
if (!daemonRuntime) throw new Error('NFSDCLD_RUNTIME=bun, but no Bun binary in node_modules/@oven');
/*
 * The daemon keeps one capability, CAP_DAC_READ_SEARCH, and only in its
 * own process (not inheritable, not ambient): nfsd's clients/ is mode 0600,
 * which root without it cannot search, and that list is how GraceDone learns
 * which v4.0 clients reclaimed (lib/cld/carry.ts; nfsdcld drops everything
 * and refuses those clients after the next restart). It lets the daemon read
 * what root does not own, and nothing more: no write, no other privilege.
 * Set through setpriv (start-up does not matter here); without it, nocaps
 * and no capability, and the daemon says once that it behaves as nfsdcld.
 */
const DAEMON_CAPS = '--inh-caps=-all --ambient-caps=-all --bounding-set=-all,+dac_read_search --';
const daemonSetpriv = envS && process.env.NFSDCLTRACK_SETPRIV !== '0' && spawnSync(SETPRIV, [...DAEMON_CAPS.split(' '), '/bin/true']).status === 0;
const daemonLine = daemonSetpriv ? `#!/usr/bin/env -S ${SETPRIV} ${DAEMON_CAPS} ${daemonRuntime}` : shebang(daemonRuntime);
if (Buffer.byteLength(daemonLine) > 255) throw new Error(`the daemon's #! line passes 255 bytes: ${daemonLine}`);
fs.writeFileSync(path.join(dist, 'nfsdcld'), `${daemonLine}\nrequire('./nfsdcld.js');\n`, { mode: 0o755 });
fs.chmodSync(path.join(dist, 'nfsdcld'), 0o755);
const order = ['nocaps', 'admin.js', 'cli.js', 'cli.js.v8cache', 'node-launch.js', 'cli.bun.js.jsc', 'cli.bun.js', 'nfsdcld.js', 'nfsdcld', 'nfsdcltrack'];
for (const f of order) if (fs.existsSync(path.join(dist, f))) fs.renameSync(path.join(dist, f), path.join(finalDist, f));
// Files of the other runtime's launcher (and a nocaps no launcher runs), from an earlier build, go.
if (!useBun) for (const f of ['cli.bun.js', 'cli.bun.js.jsc']) fs.rmSync(path.join(finalDist, f), { force: true });
if (!nocaps) fs.rmSync(path.join(finalDist, 'nocaps'), { force: true });
say(`dist/nfsdcltrack runs ${useBun ? `Bun (${bunRuntime})` : `Node (${nodeRuntime})`}`);
