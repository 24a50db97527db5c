// Shared helpers for the fault-injection suites (test/faults*.ts): running the
// built program the way the kernel does (no environment but ours), bounded
// process pools, and reading a store's true state in-process.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Store } from '../../lib/store/store';
import type { RecState } from '../../lib/store/format';
import { TEST_RUNTIME } from './runtime';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
/** Statuses SPEC §6 documents for the kernel commands (and 1 for usage). */
export const DOCUMENTED = new Set([0, 1, 135, 151, 218, 222, 234, 243, 255]);
/** 256 - errno, for a store that cannot be opened at all (SPEC §6). */
export const OPEN_FAILURES = new Set([236 /* ENOTDIR */, 226 /* EROFS */, 220 /* ENAMETOOLONG */, 243 /* EACCES */, 216 /* ELOOP */, 254 /* ENOENT */]);
export const STALE_MS = 4000;

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Time (Date.now()) the process ended. */
  end: number;
}

export interface RunOpts {
  env?: Record<string, string | undefined>;
  /** Kill with SIGKILL after this many ms (a hang is a failure). */
  timeoutMs?: number;
  /** SIGKILL the process this many ms after it was spawned. */
  killAfterMs?: number;
  cwd?: string;
  prefix?: string[];
}

/** Run `nfsdcltrack -f -s dir ...args` with exactly `env` as its environment. */
export function run(dir: string | null, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  const argv = [...(dir === null ? [] : ['-f', '-s', dir]), ...args];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
  // Through env -i, as the kernel runs us: nothing of the test runner's
  // environment (tap's NODE_OPTIONS coverage hooks) reaches the program.
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const pre = opts.prefix ?? [];
  const full = ['-i', ...envArgs, ...pre, TEST_RUNTIME, CLI, ...argv];
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const child = spawn('/usr/bin/env', full, { env: {}, stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('latin1').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('latin1').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    const killer = opts.killAfterMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs) : null;
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      if (killer) clearTimeout(killer);
      const end = Date.now();
      resolve({ status, signal, stdout, stderr, ms: end - start, end });
    });
  });
}

/** The crash points a command passes (NFSDCLTRACK_CRASH_AT=trace). */
export function tracedPoints(r: RunResult): string[] {
  return [...r.stderr.matchAll(/^crashpoint (\S+)$/gm)].map((m) => m[1]);
}

/** Run fn over items with at most n at once; results in item order. */
export async function pool<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** Scratch space: tmpfs when there is one (fsync there is free, and a crash test needs no real disk). */
export function tmpdir(tag: string): string {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return fs.mkdtempSync(path.join(base, `nfsdcltrack-${tag}-`));
}

/** A stack trace or an internal error in the program's output. */
export function hasStackTrace(text: string): boolean {
  return /\n\s+at .*[(:]\d+|internal error|TypeError|ReferenceError|RangeError|SyntaxError/.test(text);
}

export interface State {
  healthy: boolean;
  problems: string[];
  records: Map<string, RecState>;
}

/** A store's state as the program itself reads it (no lock, no writes). */
export function readState(dir: string): State {
  const store = new Store({ dir });
  const view = store.read();
  try {
    const records = new Map<string, RecState>();
    if (view.healthy) for (const r of store.records(view)) records.set(r.id, { time: r.time, session: r.session });
    return { healthy: view.healthy, problems: view.problems, records };
  } finally {
    view.close();
  }
}

/** What the program would answer for one id (what a check without writes proves). */
export function proven(dir: string, id: string): RecState | null {
  const view = new Store({ dir }).read();
  try {
    return view.get(id);
  } finally {
    view.close();
  }
}

/** Build a store in-process with records at given times (not through the CLI: fast). */
export async function buildStore(dir: string, recs: { id: string; time: number; session: boolean }[], compactBytes?: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const r of recs) {
    const store = new Store({ dir, now: () => r.time, compactBytes });
    await store.mutate((tx) => {
      tx.put(r.id, { time: r.time, session: r.session });
    });
  }
}

export function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true, preserveTimestamps: true });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once cond() holds (polling), or fails the wait after ms. */
export async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(20)) if (Date.now() > end) throw new Error('timed out waiting');
}
export const nowSec = () => Math.floor(Date.now() / 1000);

/** Four records: v4.0 and v4.1, each old (time 1000) and recent. */
export function baseRecords(): { id: string; time: number; session: boolean }[] {
  const recent = nowSec() - 100;
  return [
    { id: 'a1a1', time: 1000, session: false },
    { id: 'a2a2', time: 1000, session: true },
    { id: 'b1b1', time: recent, session: false },
    { id: 'b2b2', time: recent, session: true },
  ];
}

/** Randomness a test can replay (xorshift32): the seed picks the run. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}
