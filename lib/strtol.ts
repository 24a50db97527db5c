/** Result of parsing like glibc's strtol(s, &end, 0) for a 64-bit long. */
export interface StrtolResult {
  value: bigint;
  /** Index of the first character not converted (0 when nothing was). */
  end: number;
  /** True when digits were converted. */
  converted: boolean;
  /** True on overflow (errno ERANGE); value is then clamped like glibc. */
  range: boolean;
}

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

function digitValue(c: string): number {
  const x = c.charCodeAt(0);
  if (x >= 48 && x <= 57) return x - 48;
  if (x >= 97 && x <= 122) return x - 87;
  if (x >= 65 && x <= 90) return x - 55;
  return 99;
}

/**
 * strtol with base 0: leading white space, an optional sign, then `0x` hex,
 * leading-`0` octal or decimal. "0x" with no hex digit after it converts the
 * "0" and stops at the "x", as glibc does.
 */
export function strtol(s: string): StrtolResult {
  let i = 0;
  while (i < s.length && isSpace(s[i])) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  let base = 10;
  if (s[i] === '0') {
    if ((s[i + 1] === 'x' || s[i + 1] === 'X') && i + 2 < s.length && digitValue(s[i + 2]) < 16) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  const start = i;
  let magnitude = 0n;
  const big = BigInt(base);
  while (i < s.length) {
    const d = digitValue(s[i]);
    if (d >= base) break;
    magnitude = magnitude * big + BigInt(d);
    i++;
  }
  if (i === start) return { value: 0n, end: 0, converted: false, range: false };
  let value = negative ? -magnitude : magnitude;
  let range = false;
  if (value > LONG_MAX) {
    value = LONG_MAX;
    range = true;
  } else if (value < LONG_MIN) {
    value = LONG_MIN;
    range = true;
  }
  return { value, end: i, converted: true, range };
}
