// Build: one bundled file for the upcall (dist/cli.js), the rarely used admin
// commands in a bundle of their own (dist/admin.js, loaded only when asked
// for), and dist/nfsdcltrack, the launcher that names its runtime by absolute
// path because the kernel runs us with no PATH.
import * as esbuild from 'esbuild';
import * as fs from 'fs';
import * as path from 'path';

const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const dist = path.join(root, 'dist');
fs.mkdirSync(dist, { recursive: true });

const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', legalComments: 'none', logLevel: 'warning' };
const adminExternal = {
  name: 'admin-external',
  setup(build) {
    build.onResolve({ filter: /^\.\/lib\/admin$/ }, () => ({ path: './admin.js', external: true }));
  },
};
const runtime = process.execPath;
await esbuild.build({
  ...common,
  absWorkingDir: root,
  entryPoints: ['cli.ts'],
  outfile: path.join(dist, 'cli.js'),
  banner: { js: `#!${runtime}` },
  plugins: [adminExternal],
});
await esbuild.build({ ...common, absWorkingDir: root, entryPoints: ['lib/admin/index.ts'], outfile: path.join(dist, 'admin.js') });
fs.chmodSync(path.join(dist, 'cli.js'), 0o755);
const launcher = path.join(dist, 'nfsdcltrack');
fs.writeFileSync(launcher, `#!${runtime}\nrequire('./cli.js');\n`, { mode: 0o755 });
fs.chmodSync(launcher, 0o755);
