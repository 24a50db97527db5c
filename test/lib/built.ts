// The built program for tests that spawn it: dist/ is (re)built when missing
// or older than a source file, one builder at a time across test processes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';

export const ROOT = path.resolve(__dirname, '..', '..');
const DIST = path.join(ROOT, 'dist');
const BUILT = ['cli.js', 'admin.js', 'nfsdcltrack'];

function newestSource(dir: string): number {
  let m = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) m = Math.max(m, newestSource(p));
    else if (e.name.endsWith('.ts')) m = Math.max(m, fs.statSync(p).mtimeMs);
  }
  return m;
}

function stale(): boolean {
  try {
    const built = Math.min(...BUILT.map((f) => fs.statSync(path.join(DIST, f)).mtimeMs));
    return built < Math.max(newestSource(path.join(ROOT, 'lib')), fs.statSync(path.join(ROOT, 'cli.ts')).mtimeMs);
  } catch {
    return true;
  }
}

export function ensureBuilt(): void {
  if (!stale()) return;
  const lock = path.join(os.tmpdir(), 'nfsdcltrack-test-build.lock');
  for (let i = 0; ; i++) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (i > 600) fs.rmSync(lock, { recursive: true, force: true });
      spawnSync('sleep', ['0.1']);
    }
  }
  try {
    if (stale()) {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`build failed: ${r.stderr}`);
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * A private copy of dist/ in `into` (the launcher loads only files in its own
 * directory), so that a concurrent rebuild cannot pull files from under a
 * running test. Returns the launcher's path.
 */
export function privateProgram(into: string): string {
  for (let attempt = 0; ; attempt++) {
    ensureBuilt();
    fs.rmSync(into, { recursive: true, force: true });
    fs.mkdirSync(into, { recursive: true });
    for (const f of fs.readdirSync(DIST)) {
      const st = fs.statSync(path.join(DIST, f));
      if (!st.isFile()) continue;
      fs.copyFileSync(path.join(DIST, f), path.join(into, f));
      fs.chmodSync(path.join(into, f), st.mode & 0o777);
    }
    const bin = path.join(into, 'nfsdcltrack');
    const probe = spawnSync(bin, ['-h'], { env: {}, encoding: 'utf8' });
    if (probe.status === 1 && probe.stdout.startsWith('Usage:')) return bin;
    if (attempt >= 20) throw new Error(`the built program does not run: ${probe.status} ${probe.stderr}`);
    spawnSync('sleep', ['0.5']); // a build in progress elsewhere
  }
}
