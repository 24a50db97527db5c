// The snapshot file: lookups by binary search over its sorted lines (a check
// reads a few KiB whatever the store's size), the count of clients still to
// reclaim from its time index, and a streaming reader and writer for compaction.
import * as fs from 'fs';
import {
  decodeRecord,
  decodeRecordAt,
  decodeSnapshotHeader,
  decodeTimeLine,
  encodeRecord,
  encodeSnapshotHeader,
  encodeTimeLine,
  keyOf,
  newRecordFields,
  recordKey,
  recordOf,
  SNAPSHOT_HEADER_BYTES,
  TIME_LINE_BYTES,
  type ClientRecord,
  type Epochs,
  type RecState,
  type SnapshotHeader,
} from './format';
import { createPrivate, openRead, readAt, writeAll } from './fsutil';

/** Below this many bytes a search just reads the rest of the range. */
const SCAN_BYTES = 16384;
/** A first probe's read: a line of a typical client id (~150 bytes) and the end of the one before fit. */
const SHORT_PROBE_BYTES = 1024;
/** Longer than any valid line (2048 hex digits plus fields). */
const PROBE_BYTES = 8192;

/** What a probe at an offset found: the first sound line after it. */
interface Probe {
  key: string;
  record: RecState;
  start: number;
  end: number;
}
const STREAM_CHUNK = 1 << 18;

export class SnapshotReader {
  readonly header: SnapshotHeader | null;
  private readonly dataStart: number;
  private readonly dataEnd: number;
  /** Lines seen damaged by the last lookup or stream, for the log. */
  damagedSeen = 0;
  /** Lines a stream skipped as older than its limit. */
  skipped = 0;
  /** The last lookup: a write looks its client up twice (to decide, then to record the previous state). */
  private last: { id: string; rec: RecState | null } | null = null;
  /**
   * Probes made, by offset. Every search starts from the same range, so the
   * first probes of every lookup are the same ones: a batch of creates (one
   * transaction, one reader) reads each of them once. Only for this reader:
   * its file, open, cannot change under it.
   */
  private readonly probes = new Map<number, Probe>();

  private constructor(readonly fd: number, readonly size: number) {
    const head = readAt(fd, 0, Math.min(size, 4096));
    const nl = head.indexOf('\n');
    const header = nl < 0 ? null : decodeSnapshotHeader(head.slice(0, nl));
    const dataStart = nl >= 0 && head.startsWith('#') ? nl + 1 : 0;
    const dataEnd = header ? size - header.times * TIME_LINE_BYTES : size;
    this.header = header && dataEnd >= dataStart ? header : null;
    this.dataStart = dataStart;
    this.dataEnd = this.header ? dataEnd : size;
  }

  /** Null when there is no snapshot file. */
  static open(path: string): SnapshotReader | null {
    const fd = openRead(path);
    if (fd === null) return null;
    return new SnapshotReader(fd, fs.fstatSync(fd).size);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** The record for an id, or null when absent (or its line is damaged). */
  lookup(id: string): RecState | null {
    if (this.last?.id === id) return this.last.rec;
    const rec = this.search(id);
    this.last = { id, rec };
    return rec;
  }

  private search(id: string): RecState | null {
    const key = keyOf(id);
    let lo = this.dataStart;
    let hi = this.dataEnd;
    while (hi - lo > SCAN_BYTES) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const line = this.probe(mid);
      if (!line) return this.scan(this.dataStart, this.dataEnd, key);
      if (line.key === key) return line.record;
      if (line.key < key) lo = line.end;
      else hi = line.start;
    }
    return this.scan(lo, hi, key);
  }

  /** The first sound line after offset at (a short read first, a long one when no whole line was in it). */
  private probe(at: number): Probe | null {
    const seen = this.probes.get(at);
    if (seen) return seen;
    const damaged = this.damagedSeen;
    let line = this.firstValidLine(readAt(this.fd, at, SHORT_PROBE_BYTES), at);
    if (!line && at + SHORT_PROBE_BYTES < this.dataEnd) {
      this.damagedSeen = damaged; // the long read sees them again
      line = this.firstValidLine(readAt(this.fd, at, PROBE_BYTES), at);
    }
    if (line) this.probes.set(at, line);
    return line;
  }

  private firstValidLine(probe: string, at: number): Probe | null {
    let nl = probe.indexOf('\n');
    while (nl >= 0) {
      const next = probe.indexOf('\n', nl + 1);
      if (next < 0) return null;
      const text = probe.slice(nl + 1, next);
      const rec = decodeRecord(text);
      if (rec) return { key: keyOf(rec.id), record: rec, start: at + nl + 1, end: at + next + 1 };
      this.damagedSeen++;
      nl = next;
    }
    return null;
  }

  private scan(from: number, to: number, key: string): RecState | null {
    const text = readAt(this.fd, from, to - from);
    let pos = 0;
    while (pos < text.length) {
      let nl = text.indexOf('\n', pos);
      if (nl < 0) nl = text.length;
      const line = text.slice(pos, nl);
      pos = nl + 1;
      if (recordKey(line) !== key) continue;
      const rec = decodeRecord(line);
      if (rec) return rec;
      this.damagedSeen++;
    }
    return null;
  }

  /**
   * Records that must still reclaim after a boot at graceStart: every v4.0
   * client plus the session clients older than it. Null when the header or
   * time index cannot be trusted.
   */
  countReclaiming(graceStart: number): number | null {
    const h = this.header;
    if (!h) return null;
    const sessions = h.records - h.v40;
    if (h.times === 0) return sessions === 0 ? h.v40 : null;
    const lineAt = (i: number) => decodeTimeLine(readAt(this.fd, this.dataEnd + i * TIME_LINE_BYTES, TIME_LINE_BYTES - 1));
    const last = lineAt(h.times - 1);
    if (!last || last.count !== sessions) return null;
    // Last index whose time is below graceStart.
    let lo = -1;
    let hi = h.times;
    let below = 0;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      const t = mid === h.times - 1 ? last : lineAt(mid);
      if (!t) return null;
      if (t.time < graceStart) {
        lo = mid;
        below = t.count;
      } else {
        hi = mid;
      }
    }
    return h.v40 + below;
  }

  /** The record lines in file order, as bytes, read in chunks into one buffer. */
  lines(): LineReader {
    return new LineReader(this.fd, this.dataStart, this.dataEnd);
  }

  /**
   * Every record line in file order, damaged ones as null. Lines whose time
   * field reads older than `olderThan` are skipped undecoded and counted in
   * `skipped`: gracedone drops them whether they are sound or damaged, and
   * not decoding them halves its time and garbage.
   */
  *stream(olderThan?: number): Generator<StreamedRecord | null> {
    const lines = this.lines();
    const f = newRecordFields();
    while (lines.next()) {
      const { buf, start, end } = lines;
      if (olderThan !== undefined && lines.terminated) {
        const t = timeField(buf, start, end);
        if (t >= 0 && t < olderThan) {
          this.skipped++;
          continue;
        }
      }
      if (!lines.terminated || !decodeRecordAt(buf, start, end, f)) {
        this.damagedSeen++;
        yield null;
        continue;
      }
      const rec: StreamedRecord = recordOf(buf, f);
      // A version 1 line is written anew, as version 2.
      if (!f.v1) rec.line = buf.toString('latin1', start, end);
      yield rec;
    }
  }
}

/**
 * A file's lines, one at a time, in one buffer (no chunk concatenation and no
 * string: the garbage of a 100,000-record pass is what sets the process's
 * peak memory). After next(), the line is buf[start, end), without its
 * newline, until the next call.
 */
export class LineReader {
  buf = Buffer.allocUnsafe(STREAM_CHUNK);
  start = 0;
  end = -1;
  /** False for a last line with no newline (a damaged one). */
  terminated = true;
  /** buf[0, have) is read. */
  private have = 0;
  private eof = false;

  constructor(
    private readonly fd: number,
    private pos: number,
    private readonly limit: number,
  ) {}

  next(): boolean {
    for (;;) {
      const at = this.end + 1;
      let nl = at < this.have ? this.buf.indexOf(10, at) : -1;
      if (nl >= this.have) nl = -1;
      if (nl >= 0 || (this.eof && at < this.have)) {
        this.terminated = nl >= 0;
        this.start = at;
        this.end = nl >= 0 ? nl : this.have;
        return true;
      }
      if (this.eof) return false;
      // Keep the unfinished line, at the front, and read on after it.
      const rest = this.have - at;
      if (rest === this.buf.length) this.buf = Buffer.concat([this.buf, Buffer.allocUnsafe(this.buf.length)]);
      else this.buf.copyWithin(0, at, this.have);
      this.have = rest;
      this.end = -1;
      const want = Math.min(this.buf.length - this.have, this.limit - this.pos);
      const n = want > 0 ? fs.readSync(this.fd, this.buf, this.have, want, this.pos) : 0;
      if (n === 0) this.eof = true;
      this.pos += n;
      this.have += n;
    }
  }
}

/** The time field (the second) of the record line b[from..to), unchecked; -1 if it has none. */
function timeField(b: Buffer, from: number, to: number): number {
  const tStart = b.indexOf(32, from) + 1;
  if (tStart <= from || tStart >= to) return -1;
  let t = 0;
  let i = tStart;
  for (; i < to && i - tStart <= 16; i++) {
    const c = b[i] - 48;
    if (c === 32 - 48) break;
    if (c < 0 || c > 9) return -1;
    t = t * 10 + c;
  }
  return i > tStart && i < to && b[i] === 32 ? t : -1;
}

/**
 * Bun lets a short-lived process's garbage pile up: a compaction of 100,000
 * records peaked at 67-72 MiB without a collection now and then, 57-63 MiB
 * with one every 16,384 records, at no measurable cost. Node collects on its own.
 */
function collectGarbage(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}

/** A record, with the checked line it was read from when it comes from a snapshot. */
export type StreamedRecord = ClientRecord & { line?: string };

export interface SnapshotStats {
  records: number;
  v40: number;
  times: number;
}

/**
 * Write records (already sorted by key) to a new private file at tmpPath,
 * streaming, and fsync it. The header, whose counts are known only at the
 * end, has a fixed width and is written last in place.
 */
export function writeSnapshotFile(tmpPath: string, gen: number, epochs: Epochs, records: Iterable<StreamedRecord>): SnapshotStats {
  const fd = createPrivate(tmpPath);
  try {
    // Bytes go straight into one buffer: no string building per record.
    const out = Buffer.allocUnsafe(STREAM_CHUNK + PROBE_BYTES);
    let used = SNAPSHOT_HEADER_BYTES;
    let filePos = 0;
    const flush = (): void => {
      for (let done = 0; done < used; ) done += fs.writeSync(fd, out, done, used - done, filePos + done);
      filePos += used;
      used = 0;
    };
    const put = (text: string): void => {
      if (used >= STREAM_CHUNK) flush();
      used += out.write(text, used, 'latin1');
    };
    const times = new Map<number, number>();
    let count = 0;
    let v40 = 0;
    for (const r of records) {
      // A line read from the old snapshot, checked and unchanged, is copied as is.
      if (r.line !== undefined) {
        put(r.line);
        out[used++] = 10;
      } else {
        put(encodeRecord(r));
      }
      count++;
      if ((count & 16383) === 0) collectGarbage();
      if (r.session) times.set(r.time, (times.get(r.time) ?? 0) + 1);
      else v40++;
    }
    let cumulative = 0;
    for (const t of [...times.keys()].sort((a, b) => a - b)) {
      cumulative += times.get(t)!;
      put(encodeTimeLine(t, cumulative));
    }
    flush();
    writeAll(fd, encodeSnapshotHeader({ gen, records: count, v40, times: times.size, epochs }), 0);
    fs.fsyncSync(fd);
    return { records: count, v40, times: times.size };
  } finally {
    fs.closeSync(fd);
  }
}
