// tap's coverage map: what the thresholds in package.json measure. The
// sources only: not dist/ (esbuild's bundles, with no source maps, run by the
// tests' child processes, which tap's process tracking follows) nor
// scripts/ (the build, run by the tests that rebuild dist/).
export default () => ['lib/**/*.ts', 'cli.ts', 'nfsdcld.ts'];
