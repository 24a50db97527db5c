// Thin file-system helpers with the store's rules built in: no symlinks
// followed inside the storage dir, 0600 files, and directories fsync'ed after
// a name is created or replaced, and nothing but a regular file opened.
import * as fs from 'fs';
import { EREMOTEIO, ErrnoError } from '../errno';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = fs.constants;

/**
 * Open a store file that must be a regular one. O_NONBLOCK: a FIFO planted
 * in its place would otherwise block the open (and the upcall, and the lock)
 * forever; a FIFO, device or directory is refused at once. O_NONBLOCK changes
 * nothing for a regular file.
 */
function openRegular(path: string, flags: number): number {
  const fd = fs.openSync(path, flags | O_NOFOLLOW | O_NONBLOCK);
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  if (st.isFile()) return fd;
  fs.closeSync(fd);
  const kind = st.isFIFO() ? 'FIFO' : st.isDirectory() ? 'directory' : st.isSocket() ? 'socket' : 'device';
  throw new ErrnoError(EREMOTEIO, `${path} is a ${kind}, not a regular file`);
}

/** Open for reading without following a symlink; null when the file does not exist. */
export function openRead(path: string): number | null {
  try {
    return openRegular(path, O_RDONLY);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The names in a directory; none when it cannot be read. */
export function namesIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Does a name exist (a dangling symlink counts)? */
export function lexists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export function openWrite(path: string): number {
  return openRegular(path, O_WRONLY);
}

export function openAppend(path: string): number {
  return openRegular(path, O_WRONLY | O_APPEND);
}

/** Create a new private file; an old one at that name (a crash's leftover) is replaced. */
export function createPrivate(path: string): number {
  try {
    fs.unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  fs.fchmodSync(fd, 0o600);
  return fd;
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Up to len bytes from pos (fewer at the end of the file). */
export function readBytes(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** The same as latin1 text, so that string offsets are byte offsets. */
export function readAt(fd: number, pos: number, len: number): string {
  return readBytes(fd, pos, len).toString('latin1');
}

export function writeAll(fd: number, data: string, pos?: number): void {
  const buf = Buffer.from(data, 'latin1');
  let done = 0;
  while (done < buf.length) {
    done += fs.writeSync(fd, buf, done, buf.length - done, pos === undefined ? null : pos + done);
  }
}

/**
 * Replace a small file atomically (write-file-atomic: temporary file, fsync,
 * rename), then fsync the directory, which write-file-atomic does not do.
 * write-file-atomic writes through a symlink at the target, so a planted one
 * is removed first: nothing outside the storage dir is ever written.
 */
export function replaceSmallFile(dir: string, path: string, data: string): void {
  try {
    if (fs.lstatSync(path).isSymbolicLink()) fs.unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // Loaded lazily: only compaction and store creation need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const writeFileAtomic = require('write-file-atomic') as typeof import('write-file-atomic');
  writeFileAtomic.sync(path, data, { mode: 0o600, fsync: true });
  fsyncDir(dir);
}
