// nfs.conf reader that behaves like nfs-utils' support/nfs/conffile.c
// (conf_init_file / conf_load_file / conf_init_dir / conf_parse /
// conf_parse_line / conf_get_section), including its quirks, so that this
// program sees exactly the configuration the C nfsdcltrack would see.
//
// Behaviour reproduced from conffile.c (see the comments at each place):
//  * the buffer ends at the first NUL byte (strlen); a last line without a
//    newline is ignored with a warning; "\\\n" joins lines (both characters
//    become spaces) and does not advance the line counter used in warnings;
//  * leading white space is skipped; '#' and ';' start comment lines;
//  * "[section]" and "[section \"sub\"]" headers; a header without ']' drops
//    the current section ("non-matched ']'"), a subsection without its
//    closing quote keeps the section and no subsection;
//  * "key = value"; values may be "double" or 'single' quoted (the text after
//    the closing quote is ignored); unquoted values end at the first '#' or
//    ';' and lose trailing white space; empty values are not stored;
//  * assignments before any section are ignored with a warning, and so are
//    include lines there;
//  * "include = [-]path": relative to the including file's directory,
//    inheriting (a copy of) the current section; a leading '-' makes a
//    missing file silent;
//  * section names are stored lower-cased; section, key and subsection are
//    matched ASCII-case-insensitively (strcasecmp), in the C locale;
//  * every assignment first removes the binding with the same section and
//    key *whatever its subsection* (conf_remove_now ignores the subsection),
//    so there is at most one binding per (section, key);
//  * a value "$NAME" is looked up in the environment (an empty variable
//    counts as unset) and then as key NAME of section [environment];
//  * load order: for a main file under /etc/, /usr/etc/<file> and
//    /usr/etc/<file>.d/*.conf first; a main file that can be read replaces
//    everything loaded before it; then <file>.d/*.conf, in versionsort order,
//    regular files and symlinks only, no dot-files, ".conf" suffix only.
//
// Deliberate differences (robustness; the C code would crash, hang or
// allocate without bound):
//  * include nesting is limited to MAX_INCLUDE_DEPTH, a single file to
//    MAX_FILE_SIZE bytes and one load to MAX_FILES files / MAX_TOTAL_BYTES;
//  * "$NAME" chains through [environment] stop after MAX_EXPANSIONS steps
//    (a self-reference makes the C code loop forever) and yield undefined;
//  * at most MAX_WARNINGS warnings are reported per load;
//  * files are opened O_NONBLOCK (a FIFO does not hang the upcall) and are
//    not flock()ed; FIFOs, sockets and block devices are refused;
//  * warnings about unreadable files carry the reason; the vendor layer of a
//    main file "X/etc/..." (X not empty) is "X/usr/etc/...", a hook for
//    tests, since the C code only knows the "/etc/" prefix.
//
// Only 'fs' and 'path' are required: this runs on every kernel upcall.

import * as fs from 'fs';
import * as path from 'path';
import { readBytes } from './store/fsutil';

export interface NfsConf {
  get(section: string, key: string, subsection?: string): string | undefined;
}

/** One stored assignment, as conf_report (nfsconf --dump) would list it. */
export interface NfsConfBinding {
  /** lower-cased, as conf_set stores it */
  section: string;
  subsection: string | undefined;
  /** as written in the file (the last assignment's spelling) */
  key: string;
  /** raw value, before "$NAME" expansion */
  value: string;
}

export type Env = Record<string, string | undefined>;
export type Warn = (msg: string) => void;

export const MAX_INCLUDE_DEPTH = 10;
export const MAX_FILE_SIZE = 1024 * 1024;
export const MAX_TOTAL_BYTES = 8 * 1024 * 1024;
export const MAX_FILES = 256;
export const MAX_EXPANSIONS = 16;
export const MAX_WARNINGS = 100;

// ---------------------------------------------------------------------------
// character classes of the C locale

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

function isSpace(c: number): boolean {
  // ' ', \t, \n, \v, \f, \r
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** tolower() of the C locale: only A-Z change. */
export function asciiLower(s: string): string {
  let i = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) break;
    i++;
  }
  if (i === n) return s;
  let out = s.slice(0, i);
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    out += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : s[i];
  }
  return out;
}

// ---------------------------------------------------------------------------
// the binding store

interface Stored {
  subsection: string | undefined;
  subLower: string | undefined;
  key: string;
  value: string;
}

interface Op {
  section: string; // lower-cased
  subsection: string | undefined;
  key: string;
  value: string;
}

function byteCompare(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class NfsConfStore implements NfsConf {
  // lower-cased section -> lower-cased key -> binding
  private readonly sections = new Map<string, Map<string, Stored>>();

  constructor(private readonly env: Env = {}) {}

  /** conf_free_bindings() */
  clear(): void {
    this.sections.clear();
  }

  /** conf_end(trans, 1) for a queue of CONF_SET operations (override = 1). */
  apply(ops: readonly Op[]): void {
    for (const op of ops) {
      let keys = this.sections.get(op.section);
      if (keys === undefined) {
        keys = new Map();
        this.sections.set(op.section, keys);
      }
      // conf_remove_now(section, tag) matches any subsection, then the new
      // binding is inserted: one binding per (section, key).
      keys.set(asciiLower(op.key), {
        subsection: op.subsection,
        subLower: op.subsection === undefined ? undefined : asciiLower(op.subsection),
        key: op.key,
        value: op.value,
      });
    }
  }

  private lookup(section: string, key: string, subLower: string | undefined): Stored | undefined {
    const keys = this.sections.get(asciiLower(section));
    if (keys === undefined) return undefined;
    const b = keys.get(asciiLower(key));
    if (b === undefined || b.subLower !== subLower) return undefined;
    return b;
  }

  /** conf_get_entry(): the raw value, without "$NAME" expansion. */
  getRaw(section: string, key: string, subsection?: string): string | undefined {
    const b = this.lookup(section, key, subsection === undefined ? undefined : asciiLower(subsection));
    return b === undefined ? undefined : b.value;
  }

  /**
   * conf_get_section() (conf_get_str() when subsection is undefined): a value
   * "$NAME" is replaced by the environment variable NAME when it is set and
   * not empty, else by the value of key NAME in section [environment] (with
   * the same subsection), itself expanded the same way.
   */
  get(section: string, key: string, subsection?: string): string | undefined {
    const subLower = subsection === undefined ? undefined : asciiLower(subsection);
    let sec = section;
    let tag = key;
    for (let i = 0; i <= MAX_EXPANSIONS; i++) {
      const b = this.lookup(sec, tag, subLower);
      if (b === undefined) return undefined;
      if (b.value.charCodeAt(0) !== 0x24 /* $ */) return b.value;
      const name = b.value.slice(1);
      // getenv("") and names with '=' find nothing sensible
      if (name !== '' && name.indexOf('=') < 0) {
        const v = this.env[name];
        if (v !== undefined && v !== '') return v;
      }
      sec = 'environment';
      tag = name;
    }
    return undefined;
  }

  /** Every binding, sorted like conf_report(): section, subsection, key. */
  bindings(): NfsConfBinding[] {
    const out: NfsConfBinding[] = [];
    for (const [section, keys] of this.sections) {
      for (const b of keys.values()) {
        out.push({ section, subsection: b.subsection, key: b.key, value: b.value });
      }
    }
    out.sort((a, b) => {
      let r = byteCompare(a.section, b.section);
      if (r !== 0) return r;
      // no subsection sorts first
      r = (a.subsection === undefined ? 0 : 1) - (b.subsection === undefined ? 0 : 1);
      if (r !== 0) return r;
      r = byteCompare(a.subsection ?? '', b.subsection ?? '');
      if (r !== 0) return r;
      return byteCompare(a.key, b.key);
    });
    return out;
  }

  /** The text `nfsconf --dump` prints (conf_report_dump_text). */
  dump(): string {
    let out = '';
    let last: NfsConfBinding | undefined;
    for (const b of this.bindings()) {
      if (last === undefined || last.section !== b.section || last.subsection !== b.subsection) {
        if (last !== undefined) out += '\n';
        out += b.subsection === undefined ? `[${b.section}]\n` : `[${b.section} "${b.subsection}"]\n`;
      }
      const v = b.value;
      const quote = v.length > 0 && (isSpace(v.charCodeAt(0)) || isSpace(v.charCodeAt(v.length - 1)));
      out += quote ? ` ${b.key} = "${v}"\n` : ` ${b.key} = ${v}\n`;
      last = b;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// file access

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EIO: 'Input/output error',
  EMFILE: 'Too many open files',
  ENFILE: 'Too many open files in system',
  ENOMEM: 'Cannot allocate memory',
  ENXIO: 'No such device or address',
};

function strerror(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return ERRNO_TEXT[code] ?? code;
  return String(e);
}

function errCode(e: unknown): unknown {
  return (e as { code?: unknown } | null)?.code;
}

interface Ctx {
  warn: Warn;
  /** conf_readfile(): the text, or null (already warned, unless ENOENT) */
  read: (p: string) => string | null;
}

function makeReader(warn: Warn): (p: string) => string | null {
  let files = 0;
  let bytes = 0;
  const flags = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
  return (p: string): string | null => {
    if (files >= MAX_FILES) {
      warn(`conf_readfile: more than ${MAX_FILES} files read, not reading "${p}"`);
      return null;
    }
    let fd: number;
    try {
      fd = fs.openSync(p, flags);
    } catch (e) {
      // conf_readfile() is silent only when stat() says ENOENT
      if (errCode(e) !== 'ENOENT') {
        warn(`conf_readfile: open ("${p}", O_RDONLY) failed: ${strerror(e)}`);
      }
      return null;
    }
    files++;
    let text: string | null = null;
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) {
        warn(`conf_readfile: read ("${p}") failed: Is a directory`);
      } else if (st.isCharacterDevice()) {
        text = ''; // /dev/null: size 0, as lseek() says
      } else if (!st.isFile()) {
        warn(`conf_readfile: "${p}" is not a regular file, ignored`);
      } else if (st.size > MAX_FILE_SIZE || bytes + st.size > MAX_TOTAL_BYTES) {
        warn(`conf_readfile: "${p}" is too large (${st.size} bytes), ignored`);
      } else {
        const buf = readBytes(fd, 0, st.size);
        bytes += buf.length;
        text = buf.toString('utf8');
      }
    } catch (e) {
      warn(`conf_readfile: read ("${p}") failed: ${strerror(e)}`);
    }
    try {
      fs.closeSync(fd);
    } catch {
      // nothing useful to do
    }
    return text;
  };
}

function limitWarnings(warn: Warn): Warn {
  let n = 0;
  return (msg: string) => {
    n++;
    if (n <= MAX_WARNINGS) warn(msg);
    else if (n === MAX_WARNINGS + 1) warn(`nfs.conf: more than ${MAX_WARNINGS} warnings, further warnings suppressed`);
  };
}

// ---------------------------------------------------------------------------
// the parser

interface SectionState {
  section: string | undefined;
  subsection: string | undefined;
}

/** conf_parse(): split into lines, joining "\\\n" continuations. */
function parseBuffer(text: string, filename: string, state: SectionState, ops: Op[], ctx: Ctx, depth: number): void {
  const nul = text.indexOf('\0');
  const end = nul >= 0 ? nul : text.length;
  let lineno = 0;
  let lineStart = 0; // start of the current logical line
  let segStart = 0; // start of the not yet copied part of it
  let acc = ''; // copied parts (continuations)
  let pos = 0;
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0 || nl >= end) break;
    if (nl > 0 && text.charCodeAt(nl - 1) === 0x5c /* \ */) {
      // both the backslash and the newline become spaces
      acc += text.slice(segStart, nl - 1) + '  ';
      segStart = nl + 1;
    } else {
      lineno++;
      parseLine(acc + text.slice(segStart, nl), filename, lineno, state, ops, ctx, depth);
      acc = '';
      lineStart = segStart = nl + 1;
    }
    pos = nl + 1;
  }
  if (lineStart !== end) ctx.warn(`conf_parse: last line non-terminated, ignored (${filename})`);
}

function errorAt(filename: string, lineno: number): string {
  return `config error at ${filename}:${lineno}: `;
}

/** conf_parse_line() */
function parseLine(
  line: string,
  filename: string,
  lineno: number,
  state: SectionState,
  ops: Op[],
  ctx: Ctx,
  depth: number,
): void {
  const len = line.length;
  let p = 0;
  while (p < len && isSpace(line.charCodeAt(p))) p++;
  if (p === len) return;
  const first = line.charCodeAt(p);
  if (first === 0x23 /* # */ || first === 0x3b /* ; */) return;

  if (first === 0x5b /* [ */) {
    p++;
    state.section = undefined;
    state.subsection = undefined;
    while (p < len && isBlank(line.charCodeAt(p))) p++;
    const close = line.indexOf(']', p);
    if (close < 0) {
      ctx.warn(errorAt(filename, lineno) + "non-matched ']', ignoring until next section");
      return;
    }
    let e = close;
    while (e > p && isBlank(line.charCodeAt(e - 1))) e--;
    const header = line.slice(p, e);
    const q = header.indexOf('"');
    if (q < 0) {
      state.section = header;
      return;
    }
    // blanks before the quote go, but never the first character
    let ne = q;
    while (ne - 1 > 0 && isBlank(header.charCodeAt(ne - 1))) ne--;
    state.section = header.slice(0, ne);
    const rest = header.slice(q + 1);
    const q2 = rest.indexOf('"');
    if (q2 < 0) {
      // the section stays set, without a subsection
      ctx.warn(errorAt(filename, lineno) + "non-matched '\"', ignoring until next section");
      return;
    }
    state.subsection = rest.slice(0, q2);
    return;
  }

  const eq = line.indexOf('=', p);
  if (eq < 0) {
    ctx.warn(errorAt(filename, lineno) + 'line not empty and not an assignment');
    return;
  }
  if (state.section === undefined) {
    ctx.warn(errorAt(filename, lineno) + 'ignoring line not in a section');
    return;
  }
  let ke = eq;
  while (ke > p && isBlank(line.charCodeAt(ke - 1))) ke--;
  const key = line.slice(p, ke);

  let v = eq + 1;
  while (v < len && isBlank(line.charCodeAt(v))) v++;
  let value: string;
  const vc = line.charCodeAt(v);
  if (vc === 0x22 /* " */ || vc === 0x27 /* ' */) {
    const close = line.indexOf(line[v], v + 1);
    if (close < 0) {
      ctx.warn(errorAt(filename, lineno) + 'unmatched quotes');
      return;
    }
    value = line.slice(v + 1, close);
  } else {
    let ve = len;
    const hash = line.indexOf('#', v);
    if (hash >= 0) ve = hash;
    const semi = line.indexOf(';', v);
    if (semi >= 0 && semi < ve) ve = semi;
    // trailing white space goes, but never the first character
    while (ve - 1 > v && isSpace(line.charCodeAt(ve - 1))) ve--;
    value = line.slice(v, ve);
  }

  if (key === '') {
    ctx.warn(errorAt(filename, lineno) + 'missing tag in assignment');
    return;
  }

  if (asciiLower(key) === 'include') {
    let optional = false;
    let target = value;
    if (target.charCodeAt(0) === 0x2d /* - */) {
      optional = true;
      target = target.slice(1);
    }
    // relative_path(): absolute, or dirname(including file) + "/" + target
    const relpath = target.charCodeAt(0) === 0x2f ? target : path.posix.dirname(filename) + '/' + target;
    if (depth >= MAX_INCLUDE_DEPTH) {
      ctx.warn(errorAt(filename, lineno) + `includes nested deeper than ${MAX_INCLUDE_DEPTH}, not loading "${relpath}"`);
      return;
    }
    const sub = ctx.read(relpath);
    if (sub === null) {
      if (!optional) ctx.warn(errorAt(filename, lineno) + 'error loading included config');
      return;
    }
    // the included file inherits a copy of the current section
    const inner: SectionState = { section: state.section, subsection: state.subsection };
    parseBuffer(sub, relpath, inner, ops, ctx, depth + 1);
    return;
  }

  // conf_set() ignores empty values
  if (value === '') return;
  ops.push({ section: asciiLower(state.section), subsection: state.subsection, key, value });
}

export interface ParseOptions {
  /** name used in warnings and to resolve relative includes (default "nfs.conf") */
  filename?: string;
  warn?: Warn;
  /** environment for "$NAME" values (default: none) */
  env?: Env;
  /**
   * How an include is read: the text, or null when it cannot be (the reader
   * warns itself, except for a missing file). Default: nothing can be read,
   * which keeps parseNfsConf pure.
   */
  readInclude?: (path: string) => string | null;
}

/**
 * Parse one nfs.conf text, as conf_load_file() would (one transaction).
 * Pure unless opts.readInclude touches the file system. Never throws.
 */
export function parseNfsConf(text: string, opts: ParseOptions = {}): NfsConfStore {
  const warn = limitWarnings(opts.warn ?? (() => {}));
  const ctx: Ctx = { warn, read: opts.readInclude ?? (() => null) };
  const ops: Op[] = [];
  parseBuffer(text, opts.filename ?? 'nfs.conf', { section: undefined, subsection: undefined }, ops, ctx, 0);
  const store = new NfsConfStore(opts.env ?? {});
  store.apply(ops);
  return store;
}

// ---------------------------------------------------------------------------
// versionsort

// states: S_N normal, S_I integral part, S_F fractional part, S_Z leading zeroes
const S_N = 0;
const S_I = 3;
const S_F = 6;
const S_Z = 9;
const CMP = 2;
const LEN = 3;
// prettier-ignore
const NEXT_STATE = [
  /* S_N */ S_N, S_I, S_Z,
  /* S_I */ S_N, S_I, S_I,
  /* S_F */ S_N, S_F, S_F,
  /* S_Z */ S_N, S_F, S_Z,
];
// prettier-ignore
const RESULT_TYPE = [
  /*         x/x  x/d  x/0  d/x  d/d  d/0  0/x  0/d  0/0 */
  /* S_N */ CMP, CMP, CMP, CMP, LEN, CMP, CMP, CMP, CMP,
  /* S_I */ CMP, -1, -1, +1, LEN, LEN, +1, LEN, LEN,
  /* S_F */ CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP,
  /* S_Z */ CMP, +1, +1, -1, CMP, CMP, -1, CMP, CMP,
];

/** glibc strverscmp() on byte strings (a byte past the end reads as NUL). */
export function strverscmp(a: Uint8Array, b: Uint8Array): number {
  const at = (s: Uint8Array, i: number): number => (i < s.length ? s[i] : 0);
  const cls = (c: number): number => (c === 0x30 ? 2 : isDigit(c) ? 1 : 0);
  let i1 = 0;
  let i2 = 0;
  let c1 = at(a, i1++);
  let c2 = at(b, i2++);
  let state = S_N + cls(c1);
  let diff: number;
  while ((diff = c1 - c2) === 0) {
    if (c1 === 0) return 0;
    state = NEXT_STATE[state];
    c1 = at(a, i1++);
    c2 = at(b, i2++);
    state += cls(c1);
  }
  const r = RESULT_TYPE[state * 3 + cls(c2)];
  if (r === CMP) return diff;
  if (r === LEN) {
    while (isDigit(at(a, i1++))) {
      if (!isDigit(at(b, i2++))) return 1;
    }
    return isDigit(at(b, i2)) ? -1 : diff;
  }
  return r;
}

/** versionsort order of file names (their UTF-8 bytes). */
export function versionSort(names: readonly string[]): string[] {
  const keyed = names.map((n) => ({ n, b: Buffer.from(n, 'utf8') }));
  keyed.sort((x, y) => strverscmp(x.b, y.b));
  return keyed.map((k) => k.n);
}

// ---------------------------------------------------------------------------
// the loader

/**
 * Where the vendor layer of a main file lives: "/usr/etc/..." for
 * "/etc/...", as in conf_init_file(); for a test root "X/etc/...",
 * "X/usr/etc/...". undefined when the file is not under an etc/ directory.
 */
export function vendorPathFor(mainPath: string): string | undefined {
  const i = mainPath.indexOf('/etc/');
  if (i < 0) return undefined;
  return mainPath.slice(0, i) + '/usr' + mainPath.slice(i);
}

/** conf_load_file(): a file that can be read replaces everything so far. */
function loadFile(store: NfsConfStore, file: string, ctx: Ctx): void {
  const text = ctx.read(file);
  if (text === null) return;
  const ops: Op[] = [];
  parseBuffer(text, file, { section: undefined, subsection: undefined }, ops, ctx, 0);
  store.clear();
  store.apply(ops);
}

/** conf_init_dir(): <file>.d/*.conf in versionsort order, on top. */
function loadDir(store: NfsConfStore, file: string, ctx: Ctx): void {
  const dname = file + '.d';
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dname, { withFileTypes: true });
  } catch (e) {
    if (errCode(e) !== 'ENOENT') ctx.warn(`conf_init_dir: scandir ${dname}: ${strerror(e)}`);
    return;
  }
  const names: string[] = [];
  for (const d of entries) {
    // DT_REG, DT_LNK (and DT_UNKNOWN, which node resolves with lstat)
    if (!d.isFile() && !d.isSymbolicLink()) continue;
    const n = d.name;
    if (n.charCodeAt(0) === 0x2e /* . */) continue;
    if (n.length <= 5 || !n.endsWith('.conf')) continue;
    names.push(n);
  }
  const ops: Op[] = [];
  for (const n of versionSort(names)) {
    const fname = dname + '/' + n;
    const text = ctx.read(fname);
    if (text === null) continue;
    parseBuffer(text, fname, { section: undefined, subsection: undefined }, ops, ctx, 0);
  }
  store.apply(ops);
}

/**
 * conf_init_file(mainPath): the vendor layer (when mainPath is under etc/),
 * then mainPath, then mainPath.d/*.conf. Never throws: problems go to warn
 * and the loader keeps what it has. env serves "$NAME" values.
 */
export function loadNfsConf(mainPath: string, env: Env, warn: Warn): NfsConfStore {
  const w = limitWarnings(warn);
  const ctx: Ctx = { warn: w, read: makeReader(w) };
  const store = new NfsConfStore(env);
  const vendor = vendorPathFor(mainPath);
  if (vendor !== undefined) {
    loadFile(store, vendor, ctx);
    loadDir(store, vendor, ctx);
  }
  loadFile(store, mainPath, ctx);
  loadDir(store, mainPath, ctx);
  return store;
}
