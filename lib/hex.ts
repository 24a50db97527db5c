import { EINVAL, ENOBUFS } from './errno';

/** Largest nfs_client_id4 the kernel sends, in bytes once decoded. */
export const MAX_ID_BYTES = 1024;

export type HexResult = { ok: true; id: string } | { ok: false; errno: number };

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/**
 * Decode a client id as nfsdcltrack's hex_str_to_bin does, with its checks in
 * the same order (the order decides EINVAL versus ENOBUFS): before each pair,
 * a full buffer is ENOBUFS; a lone last digit or a non-hex digit is EINVAL.
 * Returns the canonical key: the same bytes as lowercase hex.
 */
export function parseHexId(src: string): HexResult {
  const n = src.length;
  for (let i = 0; i < n; i += 2) {
    if (i / 2 >= MAX_ID_BYTES) return { ok: false, errno: ENOBUFS };
    if (i + 1 >= n) return { ok: false, errno: EINVAL };
    if (!isHexDigit(src.charCodeAt(i)) || !isHexDigit(src.charCodeAt(i + 1))) {
      return { ok: false, errno: EINVAL };
    }
  }
  return { ok: true, id: src.toLowerCase() };
}

/** True for a canonical key: even-length lowercase hex within the size limit. */
export function isCanonicalId(id: string): boolean {
  if (id.length % 2 !== 0 || id.length > 2 * MAX_ID_BYTES) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}
