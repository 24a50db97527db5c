// A directory tree as a sorted list of lines, for tests that compare what an
// install left: each path with its type and mode (files also with their size
// when asked), a symlink with its target.
import * as fs from 'fs';
import * as path from 'path';

export function tree(dir: string, opts: { sizes?: boolean } = {}): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      const rel = path.relative(dir, p);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/ ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else out.push(`${rel} ${(st.mode & 0o7777).toString(8)}${opts.sizes ? ` ${st.size}` : ''}`);
    }
  };
  walk(dir);
  return out.sort();
}
