/**
 * The command line of nfsdcltrack, parsed the way GNU getopt_long parses
 * "hdfs:" with --help, --debug, --foreground and --storagedir=DIR: options may
 * follow operands (argv is permuted), "--" ends options, long options may be
 * abbreviated to any unambiguous prefix, and "-1" is an unknown option.
 * Parsing stops at the first -h or error, as the C program's loop does.
 */
export interface KernelArgs {
  help: boolean;
  debug: boolean;
  foreground: boolean;
  storagedir?: string;
  operands: string[];
  /** getopt's diagnostic when the command line is invalid (usage, exit 1). */
  error?: string;
}

export interface OptionSpec {
  name: string;
  short: string;
  hasArg: boolean;
}

/**
 * GNU getopt_long over `spec`: calls apply(short, value) for each option,
 * collects operands, and stops at -h (help) or the first error, which it
 * returns as getopt would print it.
 */
export function getoptLong(
  argv: readonly string[],
  spec: readonly OptionSpec[],
  prog: string,
  apply: (short: string, value?: string) => void,
  operands: string[],
): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const exact = spec.find((o) => o.name === name);
      const matches = exact ? [exact] : spec.filter((o) => o.name.startsWith(name));
      if (matches.length !== 1) {
        return matches.length === 0 ? `${prog}: unrecognized option '${arg}'` : `${prog}: option '${arg}' is ambiguous`;
      }
      const opt = matches[0];
      if (!opt.hasArg) {
        if (eq >= 0) return `${prog}: option '--${opt.name}' doesn't allow an argument`;
        apply(opt.short);
        if (opt.short === 'h') return undefined;
      } else if (eq >= 0) {
        apply(opt.short, arg.slice(eq + 1));
      } else if (i + 1 < argv.length) {
        apply(opt.short, argv[++i]);
      } else {
        return `${prog}: option '--${opt.name}' requires an argument`;
      }
      continue;
    }
    if (arg.length > 1 && arg[0] === '-') {
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j];
        const opt = spec.find((o) => o.short === c);
        if (!opt) return `${prog}: invalid option -- '${c}'`;
        if (!opt.hasArg) {
          apply(c);
          if (c === 'h') return undefined;
          continue;
        }
        if (j + 1 < arg.length) apply(c, arg.slice(j + 1));
        else if (i + 1 < argv.length) apply(c, argv[++i]);
        else return `${prog}: option requires an argument -- '${c}'`;
        break;
      }
      continue;
    }
    operands.push(arg);
  }
  return undefined;
}

const LONG: readonly OptionSpec[] = [
  { name: 'help', short: 'h', hasArg: false },
  { name: 'debug', short: 'd', hasArg: false },
  { name: 'foreground', short: 'f', hasArg: false },
  { name: 'storagedir', short: 's', hasArg: true },
];

export function parseKernelArgs(argv: readonly string[], prog = 'nfsdcltrack'): KernelArgs {
  const out: KernelArgs = { help: false, debug: false, foreground: false, operands: [] };
  const error = getoptLong(
    argv,
    LONG,
    prog,
    (short, value) => {
      if (short === 'h') out.help = true;
      else if (short === 'd') out.debug = true;
      else if (short === 'f') out.foreground = true;
      else out.storagedir = value;
    },
    out.operands,
  );
  if (error !== undefined) out.error = error;
  return out;
}

/**
 * The command getopt_long would leave at argv[optind], found without
 * validating the options (the admin commands have options of their own):
 * permuted operands, "--", the value of -s (attached, clustered as in -fs DIR,
 * or the next argument) and of --storagedir or any abbreviation of it (--s,
 * --stor, with or without "="). Unknown options are skipped.
 */
export function firstOperand(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return argv[i + 1];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (eq < 0 && name.length > 0 && 'storagedir'.startsWith(name)) i++;
      continue;
    }
    if (a.length > 1 && a[0] === '-') {
      // In a cluster, -s takes the rest of the argument, or the next one;
      // getopt goes on past an unknown letter.
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        if (c === 's') {
          if (j === a.length - 1) i++;
          break;
        }
      }
      continue;
    }
    return a;
  }
  return undefined;
}

export const USAGE = `Usage: nfsdcltrack [ -hfd ] [ -s dir ] < cmd > < arg >
Where < cmd > is one of the following and takes the following < arg >:
    init
    create <nfs_client_id4>
    remove <nfs_client_id4>
    check  <nfs_client_id4>
    gracedone <epoch time>
`;
