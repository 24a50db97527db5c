// Linux errno values the kernel-facing exit statuses are built from (SPEC §6):
// the C program returns -errno from main, so the shell sees 256 - errno.
export const EPERM = 1;
export const ENOENT = 2;
export const EACCES = 13;
export const EINVAL = 22;
export const EROFS = 30;
export const ENOTDIR = 20;
export const ERANGE = 34;
export const ENOSYS = 38;
export const ENOBUFS = 105;
export const EREMOTEIO = 121;

/** Exit status for a negative-errno return, as the shell sees it. */
export function statusFor(errno: number): number {
  return (256 - errno) & 0xff;
}

/** The numeric errno of a Node system error, or `fallback` when it has none. */
export function errnoOf(err: unknown, fallback: number): number {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n < 0 ? -n : fallback;
}

/** A failure that carries the errno the command must report. */
export class ErrnoError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}
