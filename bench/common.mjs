// What the benchmarks (bench/run.mjs, bench/cld.mjs) share: their command
// line, progress lines, the runtimes found here, medians and ratios, and
// the description of the machine a report was measured on.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const argv = process.argv.slice(2);
export const flag = (name) => argv.includes(name);
export const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

const t0 = Date.now();
export const say = (msg) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);

export const bunPath = [path.join(root, 'node_modules/@oven/bun-linux-x64/bin/bun'), path.join(root, 'node_modules/@oven/bun-linux-x64-baseline/bin/bun')].find((p) =>
  fs.existsSync(p),
);
/** The runtime a launcher names: the last word of its #! line (it may go through nocaps, or env -S and setpriv). */
export const launcherRuntime = (launcher) => fs.readFileSync(launcher, 'utf8').split('\n')[0].replace(/^#!\s*/, '').trim().split(/\s+/).pop();

export function version(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0] : '?';
}

export const median = (xs) => {
  if (!xs || xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
export const fr = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
export const pass = (ok) => (ok === undefined ? '–' : ok ? 'PASS' : '**FAIL**');

/** Cores, CPU, memory, distribution, kernel, the filesystem of `dir`, and the runtimes. */
export function machine(dir) {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? '?';
  let distro = '?';
  try {
    distro = (fs.readFileSync('/etc/os-release', 'utf8').match(/PRETTY_NAME="(.*)"/) ?? [])[1] ?? '?';
  } catch {}
  const fsType = spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout?.trim();
  return {
    host: `${os.cpus().length} × ${cpu.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${distro}, Linux ${os.release()}, store on ${fsType || '?'}`,
    runtimes: `Node ${process.version}${bunPath ? `, Bun ${version(bunPath, ['--version'])}` : ''}`,
  };
}

/** A TypeScript entry bundled (esbuild) into a CommonJS file in `dir`, and loaded. */
export async function loadBundled(entry, dir, name) {
  const esbuild = await import('esbuild');
  const out = path.join(dir, name);
  await esbuild.build({ entryPoints: [path.join(root, entry)], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: out, logLevel: 'warning' });
  return createRequire(import.meta.url)(out);
}
