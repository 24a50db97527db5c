// Tests of the nfs.conf reader (lib/nfsconf.ts) and of what nfsdcltrack
// takes from it (lib/config.ts).
//
// Expected values marked "C:" were obtained by running the real nfs-utils
// 2.6.2 `nfsconf` binary (Debian bookworm nfs-common) on the same input; the
// golden files under fixtures/nfsconf/golden/ are its literal output
// (`nfsconf --file quirks.conf --dump`, and its stderr with the "nfsconf: "
// prefix and the directory name stripped). The vendor layer (/usr/etc) is
// newer than 2.6.2 and is checked against conffile.c's conf_init_file().

import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import fsModule = require('fs');
import fc from 'fast-check';
import {
  asciiLower,
  loadNfsConf,
  MAX_FILE_SIZE,
  MAX_FILES,
  MAX_INCLUDE_DEPTH,
  MAX_WARNINGS,
  NfsConfStore,
  parseNfsConf,
  strverscmp,
  vendorPathFor,
  versionSort,
} from '../lib/nfsconf';
import { D_ALL, D_AUTH, D_CALL, D_GENERAL, D_PARSE, loadTrackConfig, parseDebugFacilities, trackConfigFrom } from '../lib/config';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'nfsconf');

function collector(): { w: string[]; warn: (m: string) => void } {
  const w: string[] = [];
  return { w, warn: (m: string) => void w.push(m) };
}

function parse(text: string, env: Record<string, string | undefined> = {}): { c: NfsConfStore; w: string[] } {
  const { w, warn } = collector();
  const c = parseNfsConf(text, { filename: 'test.conf', warn, env });
  return { c, w };
}

function tmpRoot(t: tap.Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsconf-test-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Write files below root; a value null makes a directory. */
function tree(root: string, files: Record<string, string | null>): void {
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(root, rel);
    if (text === null) {
      fs.mkdirSync(p, { recursive: true });
    } else {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, text);
    }
  }
}

// ---------------------------------------------------------------------------
t.test('comments, blank lines and section headers', async (t) => {
  const { c, w } = parse(
    [
      '# hash comment',
      '; semicolon comment',
      '   \t# indented comment',
      '',
      '   ',
      '[General]',
      'a = 1',
      '[ Spaced  Name \t]',
      'b = 2',
      '[sec "Sub Name"]',
      'c = 3',
      '[sec2"tight"] anything after the bracket is ignored',
      'd = 4',
      '[sec3   "x"   ]',
      'e = 5',
      '[]',
      'f = 6',
      '',
    ].join('\n'),
  );
  t.same(w, []);
  t.equal(c.get('general', 'a'), '1');
  t.equal(c.get('GENERAL', 'A'), '1', 'section and key names are case-insensitive');
  t.equal(c.get('spaced  name', 'b'), '2', 'blanks inside a name are kept, around it dropped');
  t.equal(c.get('sec', 'c', 'Sub Name'), '3');
  t.equal(c.get('sec', 'c', 'sub name'), '3', 'C: subsections match case-insensitively (strcasecmp)');
  t.equal(c.get('sec', 'c'), undefined, 'a subsection binding is not a plain one');
  t.equal(c.get('sec2', 'd', 'tight'), '4');
  t.equal(c.get('sec3', 'e', 'x'), '5');
  t.equal(c.get('', 'f'), '6', '"[]" is a section with an empty name');
  t.same(
    c.bindings().map((b) => [b.section, b.subsection, b.key, b.value]),
    [
      ['', undefined, 'f', '6'],
      ['general', undefined, 'a', '1'],
      ['sec', 'Sub Name', 'c', '3'],
      ['sec2', 'tight', 'd', '4'],
      ['sec3', 'x', 'e', '5'],
      ['spaced  name', undefined, 'b', '2'],
    ],
    'section names are stored lower-cased, subsections and keys as written',
  );
});

t.test('malformed headers', async (t) => {
  const { c, w } = parse(
    ['[ok]', 'a = 1', '[broken', 'b = 2', '[half "open]', 'c = 3', '[x]', 'd = 4', ''].join('\n'),
  );
  t.same(w, [
    "config error at test.conf:3: non-matched ']', ignoring until next section",
    'config error at test.conf:4: ignoring line not in a section',
    'config error at test.conf:5: non-matched \'"\', ignoring until next section',
  ]);
  t.equal(c.get('ok', 'a'), '1');
  t.equal(c.get('broken', 'b'), undefined);
  t.equal(c.get('half', 'c'), '3', 'C: an unterminated subsection leaves the plain section set');
  t.equal(c.get('x', 'd'), '4');
});

t.test('assignments and values', async (t) => {
  const { c, w } = parse(
    [
      '[s]',
      'plain=value',
      '  spaced   =   spaced value   ',
      'dq = "  keep  spaces  " junk after the quote',
      "sq = 'single # ; kept'",
      'dqs = "it\'s"',
      'hash = value # comment',
      'semi = value; comment',
      'both = a;b#c',
      'hashfirst = x#y;z',
      'eq = a = b',
      'crlf = value\r',
      'cronly =\r',
      'tabs =\tv\t',
      'empty =',
      'emptyq = ""',
      "emptysq = ''",
      'emptyc = # nothing',
      'Case = lower later',
      'CASE = upper wins',
      'a key = with space',
      'utf8 = /srv/café',
      '',
    ].join('\n'),
  );
  t.same(w, []);
  t.equal(c.get('s', 'plain'), 'value');
  t.equal(c.get('s', 'spaced'), 'spaced value');
  t.equal(c.get('s', 'dq'), '  keep  spaces  ');
  t.equal(c.get('s', 'sq'), 'single # ; kept');
  t.equal(c.get('s', 'dqs'), "it's");
  t.equal(c.get('s', 'hash'), 'value');
  t.equal(c.get('s', 'semi'), 'value');
  t.equal(c.get('s', 'both'), 'a');
  t.equal(c.get('s', 'hashfirst'), 'x');
  t.equal(c.get('s', 'eq'), 'a = b', 'the first = splits');
  t.equal(c.get('s', 'crlf'), 'value', 'a CR before the newline is trailing white space');
  t.equal(c.get('s', 'cronly'), '\r', 'C: the first character of a value is never trimmed');
  t.equal(c.get('s', 'tabs'), 'v');
  t.equal(c.get('s', 'empty'), undefined, 'empty values are ignored');
  t.equal(c.get('s', 'emptyq'), undefined);
  t.equal(c.get('s', 'emptysq'), undefined);
  t.equal(c.get('s', 'emptyc'), undefined);
  t.equal(c.get('s', 'case'), 'upper wins');
  t.equal(c.bindings().find((b) => b.section === 's' && asciiLower(b.key) === 'case')?.key, 'CASE');
  t.equal(c.get('s', 'a key'), 'with space');
  t.equal(c.get('s', 'utf8'), '/srv/café');
  t.equal(c.get('s', 'missing'), undefined);
  t.equal(c.get('nosuchsection', 'plain'), undefined);
});

t.test('bad lines warn with their line number and are skipped', async (t) => {
  const { c, w } = parse(
    [
      'before = section', // 1
      '[s]', // 2
      'just words', // 3
      '= no key', // 4
      'dq = "never closed', // 5
      "sq = 'never closed", // 6
      'ok = yes', // 7
      'last = no newline', // 8 (not terminated)
    ].join('\n'),
  );
  t.same(w, [
    'config error at test.conf:1: ignoring line not in a section',
    'config error at test.conf:3: line not empty and not an assignment',
    'config error at test.conf:4: missing tag in assignment',
    'config error at test.conf:5: unmatched quotes',
    'config error at test.conf:6: unmatched quotes',
    'conf_parse: last line non-terminated, ignored (test.conf)',
  ]);
  t.same(
    c.bindings().map((b) => `${b.key}=${b.value}`),
    ['ok=yes'],
    'C: the unterminated last line is dropped',
  );
});

t.test('line continuation', async (t) => {
  const { c, w } = parse(['[s]', 'k = one \\', '  two\\', 'three', 'junk', 'tail = x \\', ''].join('\n'));
  // C: "\\\n" becomes two spaces and does not count as a line
  t.equal(c.get('s', 'k'), 'one     two  three');
  t.same(w, [
    'config error at test.conf:3: line not empty and not an assignment',
    'conf_parse: last line non-terminated, ignored (test.conf)',
  ]);
  t.equal(c.get('s', 'tail'), undefined, 'a continuation into end of file is an unterminated line');
  const cont = parse('[s]\nk = a\\\n= b\n').c;
  t.equal(cont.get('s', 'k'), 'a  = b', 'a continued line is one line for the = search');
  const hdr = parse('[s\\\n]\nk = v\n').c;
  t.equal(hdr.get('s', 'k'), 'v', 'continuation inside a header');
});

t.test('a NUL byte ends the text, like strlen()', async (t) => {
  const { c, w } = parse('[s]\na = 1\n\0b = 2\n');
  t.same(w, []);
  t.equal(c.get('s', 'a'), '1');
  t.equal(c.get('s', 'b'), undefined);
  const r = parse('[s]\na = 1\0\nb = 2\n');
  t.same(r.w, ['conf_parse: last line non-terminated, ignored (test.conf)']);
  t.same(r.c.bindings(), []);
});

t.test('later values win; a subsection assignment removes the plain one (C quirk)', async (t) => {
  const { c } = parse(
    [
      '[a]',
      'k = 1',
      '[A]',
      'K = 2',
      '[q]',
      'shadowed = plain',
      '[q "s"]',
      'shadowed = sub',
      '[r "x"]',
      'k = x',
      '[r "y"]',
      'k = y',
      '',
    ].join('\n'),
  );
  t.equal(c.get('a', 'k'), '2');
  // C: conf_remove_now(section, tag) ignores the subsection.
  t.equal(c.get('q', 'shadowed'), undefined);
  t.equal(c.get('q', 'shadowed', 's'), 'sub');
  t.equal(c.get('r', 'k', 'x'), undefined);
  t.equal(c.get('r', 'k', 'y'), 'y');
});

t.test('golden: quirks.conf against nfs-utils 2.6.2 nfsconf --dump', async (t) => {
  const dir = path.join(FIX, 'golden');
  const { w, warn } = collector();
  const c = loadNfsConf(path.join(dir, 'quirks.conf'), {}, warn);
  t.equal(c.dump(), fs.readFileSync(path.join(dir, 'quirks.dump'), 'utf8'));
  const expected = fs.readFileSync(path.join(dir, 'quirks.warnings'), 'utf8').split('\n').filter(Boolean);
  const got = w.map((m) =>
    m
      .split(dir)
      .join('<dir>')
      // C names no file here; we add it
      .replace(/^(conf_parse: last line non-terminated, ignored) \(.*\)$/, '$1.'),
  );
  t.same(got, expected);
  // C: nfsconf --get --arg 'case kept' sub k
  t.equal(c.get('sub', 'k', 'case kept'), 'in sub');
  t.equal(c.get('half', 'k'), 'kept in [half] without subsection');
  t.equal(c.get('quirk', 'shadowed'), undefined);
  t.equal(c.get('general', 'key'), 'LAST WINS');
  t.equal(c.get('general', 'cr'), 'crlf');
  t.equal(c.get('inc', 'from_child'), 'yes', 'an included file inherits the section');
  t.equal(c.get('inc', 'after'), 'the includer keeps its section');
  t.equal(c.get('child', 'deep'), 'from child2');
});

t.test('dump() quotes values with white space at either end', async (t) => {
  // C: nfsconf --dump of the same text
  const { c } = parse('[b "S"]\nk = "x "\n[a "x"]\nq = 1\n[a]\nz = " y"\nY = plain\n');
  t.equal(c.dump(), '[a]\n Y = plain\n z = " y"\n\n[a "x"]\n q = 1\n\n[b "S"]\n k = "x "\n');
  t.equal(parse('').c.dump(), '');
});

// ---------------------------------------------------------------------------
t.test('$NAME values', async (t) => {
  // C (nfsconf --get, with E1=one E2= in the environment):
  //   a k1 -> one; a k2 -> (unset); a k3 -> deep; a k4 -> (unset)
  //   --arg s a k6 with E2=x -> x; --arg S a k6, E2 unset -> subenv
  const text = [
    '[a]',
    'k1=$E1',
    'k2=$E2',
    'k3=$E3',
    'k4=$',
    'k5=$LOOP',
    'k7=$A=B',
    'k8=prefix$E1',
    '[a "s"]',
    'k6=$E2',
    '[environment]',
    'E2=fromsec',
    'E3=$E4',
    'E4=deep',
    'LOOP=$LOOP',
    '[environment "s"]',
    'E2=subenv',
    '',
  ].join('\n');
  const c = parse(text, { E1: 'one', E2: '', E4: '', LOOP: undefined, 'A=B': 'no', A: 'B=no' }).c;
  t.equal(c.get('a', 'k1'), 'one');
  t.equal(c.get('a', 'k2'), undefined, 'C: [environment "s"] E2 removed [environment] E2');
  t.equal(c.get('a', 'k3'), 'deep', 'an empty variable falls back to [environment]');
  t.equal(c.get('a', 'k4'), undefined);
  t.equal(c.get('a', 'k5'), undefined, 'a self-reference ends (C would loop forever)');
  t.equal(c.get('a', 'k7'), undefined, 'names with "=" are not looked up');
  t.equal(c.get('a', 'k8'), 'prefix$E1', 'only a leading $ expands');
  t.equal(c.getRaw('a', 'k1'), '$E1');
  t.equal(c.getRaw('a', 'k6', 'S'), '$E2');
  t.equal(c.getRaw('a', 'nope'), undefined);
  t.equal(parse(text, { E2: 'x' }).c.get('a', 'k6', 's'), 'x');
  t.equal(parse(text, {}).c.get('a', 'k6', 'S'), 'subenv', 'the subsection carries over to [environment]');
  t.equal(parseNfsConf('[a]\nk=$HOME\n').get('a', 'k'), undefined, 'parseNfsConf has no environment by default');
});

// ---------------------------------------------------------------------------
t.test('include', async (t) => {
  t.test('pure parse: includes cannot be read unless a reader is given', async (t) => {
    const { c, w } = parse('[s]\ninclude = x.conf\ninclude = -y.conf\nk = v\n');
    t.same(w, ['config error at test.conf:2: error loading included config']);
    t.equal(c.get('s', 'k'), 'v');
    const seen: string[] = [];
    const { w: w2, warn } = collector();
    const c2 = parseNfsConf('[s "sub"]\ninclude = inc/x.conf\nINCLUDE = "/abs/y.conf"\nafter = 1\n', {
      filename: '/etc/nfs.conf',
      warn,
      readInclude: (p) => {
        seen.push(p);
        return p === '/etc/inc/x.conf' ? 'fromx = 1\n[other]\nk = 2\n' : null;
      },
    });
    t.same(seen, ['/etc/inc/x.conf', '/abs/y.conf']);
    t.same(w2, ['config error at /etc/nfs.conf:3: error loading included config']);
    t.equal(c2.get('s', 'fromx', 'sub'), '1', 'section and subsection are inherited');
    t.equal(c2.get('other', 'k'), '2');
    t.equal(c2.get('s', 'after', 'sub'), '1', 'the included file does not change the includer section');
  });

  t.test('from files', async (t) => {
    const root = tmpRoot(t);
    tree(root, {
      'conf/main.conf': [
        'include = before-section.conf',
        '[s]',
        'include = sub/a.conf',
        'include = -sub/missing.conf',
        'include = sub/missing.conf',
        `include = ${root}/abs.conf`,
        'include = sub',
        'include = -sub',
        'own = main',
        '',
      ].join('\n'),
      'conf/sub/a.conf': 'a = from a\ninclude = b.conf\n[t]\nta = 1\n',
      'conf/sub/b.conf': 'b = from b, relative to sub/a.conf\n',
      'abs.conf': 'abs = yes\n',
      'cwd/sub/a.conf': 'a = wrong, relative to the cwd\n',
    });
    const { w, warn } = collector();
    const main = path.join(root, 'conf/main.conf');
    const c = loadNfsConf(main, {}, warn);
    t.equal(c.get('s', 'a'), 'from a');
    t.equal(c.get('s', 'b'), 'from b, relative to sub/a.conf');
    t.equal(c.get('t', 'ta'), '1');
    t.equal(c.get('s', 'abs'), 'yes');
    t.equal(c.get('s', 'own'), 'main');
    const dir = path.join(root, 'conf');
    t.same(w, [
      `config error at ${main}:1: ignoring line not in a section`,
      `config error at ${main}:5: error loading included config`,
      `conf_readfile: read ("${dir}/sub") failed: Is a directory`,
      `config error at ${main}:7: error loading included config`,
      // optional: only the reader's own warning
      `conf_readfile: read ("${dir}/sub") failed: Is a directory`,
    ]);
  });

  t.test('include loops stop at the depth limit', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'loop.conf': '[s]\nn = x\ninclude = loop.conf\n' });
    const { w, warn } = collector();
    const file = path.join(root, 'loop.conf');
    const c = loadNfsConf(file, {}, warn);
    t.equal(c.get('s', 'n'), 'x');
    t.same(w, [`config error at ${file}:3: includes nested deeper than ${MAX_INCLUDE_DEPTH}, not loading "${file}"`]);
  });

  t.test('an include fan-out stops at the file limit', async (t) => {
    const root = tmpRoot(t);
    // every level includes the next one twice: 2^10 reads without a limit
    const files: Record<string, string> = {};
    for (let i = 0; i < 10; i++) files[`l${i}.conf`] = `[s]\nl${i} = 1\ninclude = l${i + 1}.conf\ninclude = l${i + 1}.conf\n`;
    files['l10.conf'] = 'end = 1\n';
    tree(root, files);
    const { w, warn } = collector();
    const c = loadNfsConf(path.join(root, 'l0.conf'), {}, warn);
    t.equal(c.get('s', 'end'), '1');
    t.equal(w.filter((m) => m.startsWith(`conf_readfile: more than ${MAX_FILES} files read`)).length > 0, true);
    t.ok(w.length <= MAX_WARNINGS + 1, 'warnings are capped');
  });
});

// ---------------------------------------------------------------------------
t.test('vendorPathFor', async (t) => {
  t.equal(vendorPathFor('/etc/nfs.conf'), '/usr/etc/nfs.conf');
  t.equal(vendorPathFor('/etc/sub/nfs.conf'), '/usr/etc/sub/nfs.conf');
  t.equal(vendorPathFor('/tmp/root/etc/nfs.conf'), '/tmp/root/usr/etc/nfs.conf');
  t.equal(vendorPathFor('/srv/nfs.conf'), undefined);
  t.equal(vendorPathFor('etc/nfs.conf'), undefined, 'a relative etc/ is not /etc/');
  t.equal(vendorPathFor('/etcetera/nfs.conf'), undefined);
});

t.test('load order with a fake root', async (t) => {
  const layers = (): Record<string, string | null> => ({
    'usr/etc/nfs.conf': '[s]\nvendor = 1\nk = vendor\nv = vendor\n',
    'usr/etc/nfs.conf.d/a.conf': '[s]\nvendor_d = 1\nk = vendor.d\n',
    'etc/nfs.conf.d/10-a.conf': '[s]\nk = 10-a\nd10 = 1\n',
    'etc/nfs.conf.d/9-b.conf': '[s]\nk = 9-b\nd9 = 1\nlast = 9-b\n',
    'etc/nfs.conf.d/9-c.conf': '[s]\nlast = 9-c\n',
    'etc/nfs.conf.d/.hidden.conf': '[s]\nk = hidden\nhidden = 1\n',
    'etc/nfs.conf.d/x.conf.bak': '[s]\nk = bak\nbak = 1\n',
    'etc/nfs.conf.d/z.CONF': '[s]\nk = upper\nupper = 1\n',
    'etc/nfs.conf.d/.conf': '[s]\nk = dotconf\n',
    'etc/nfs.conf.d/y.conf': null,
    'etc/nfs.conf.d/y.conf/inner.conf': '[s]\nk = inner\n',
  });

  t.test('no main file: vendor layer, then main .d', async (t) => {
    const root = tmpRoot(t);
    tree(root, layers());
    const { w, warn } = collector();
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, warn);
    t.same(w, []);
    t.equal(c.get('s', 'vendor'), '1');
    t.equal(c.get('s', 'vendor_d'), '1');
    t.equal(c.get('s', 'v'), 'vendor');
    t.equal(c.get('s', 'k'), '10-a', 'version order: 9-b before 10-a');
    t.equal(c.get('s', 'last'), '9-c');
    t.equal(c.get('s', 'd9'), '1');
    t.equal(c.get('s', 'd10'), '1');
    t.equal(c.get('s', 'hidden'), undefined, 'dot-files are skipped');
    t.equal(c.get('s', 'bak'), undefined, 'only .conf names');
    t.equal(c.get('s', 'upper'), undefined, 'the suffix is case-sensitive');
  });

  t.test('an existing main file replaces the vendor layer', async (t) => {
    const root = tmpRoot(t);
    tree(root, { ...layers(), 'etc/nfs.conf': '[s]\nmain = 1\nk = main\n' });
    const { w, warn } = collector();
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, warn);
    t.same(w, []);
    t.equal(c.get('s', 'vendor'), undefined);
    t.equal(c.get('s', 'vendor_d'), undefined);
    t.equal(c.get('s', 'v'), undefined);
    t.equal(c.get('s', 'main'), '1');
    t.equal(c.get('s', 'k'), '10-a', '.d files override the main file');
  });

  t.test('an empty main file replaces the vendor layer too', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'usr/etc/nfs.conf': '[s]\nvendor = 1\n', 'etc/nfs.conf': '' });
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, () => t.fail('no warning expected'));
    t.same(c.bindings(), []);
  });

  t.test('an unreadable main file keeps the vendor layer', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'usr/etc/nfs.conf': '[s]\nvendor = 1\n', 'etc/nfs.conf': null });
    const { w, warn } = collector();
    const main = path.join(root, 'etc/nfs.conf');
    const c = loadNfsConf(main, {}, warn);
    t.equal(c.get('s', 'vendor'), '1');
    t.same(w, [`conf_readfile: read ("${main}") failed: Is a directory`]);
  });

  t.test('only the vendor .d directory', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'usr/etc/nfs.conf.d/1.conf': '[s]\nk = 1\n', 'usr/etc/nfs.conf.d/01.conf': '[s]\nk = 01\n' });
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, () => t.fail('no warning expected'));
    t.equal(c.get('s', 'k'), '1', 'versionsort: 01 before 1');
  });

  t.test('a main file outside etc/ has no vendor layer', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'usr/etc/nfs.conf': '[s]\nvendor = 1\n', 'usr/nfs.conf.d/a.conf': '[s]\nd = 1\n' });
    const c = loadNfsConf(path.join(root, 'usr/nfs.conf'), {}, () => t.fail('no warning expected'));
    t.equal(c.get('s', 'vendor'), undefined);
    t.equal(c.get('s', 'd'), '1');
  });

  t.test('symlinks in .d are followed; a link to a directory warns', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'target.txt': '[s]\nlinked = 1\n', 'etc/nfs.conf.d/sub': null });
    fs.symlinkSync(path.join(root, 'target.txt'), path.join(root, 'etc/nfs.conf.d/l.conf'));
    fs.symlinkSync('sub', path.join(root, 'etc/nfs.conf.d/m.conf'));
    fs.symlinkSync('nowhere', path.join(root, 'etc/nfs.conf.d/n.conf'));
    const { w, warn } = collector();
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, warn);
    t.equal(c.get('s', 'linked'), '1');
    t.same(w, [`conf_readfile: read ("${root}/etc/nfs.conf.d/m.conf") failed: Is a directory`]);
  });

  t.test('a .d that is not a directory warns', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'etc/nfs.conf': '[s]\nk = 1\n', 'etc/nfs.conf.d': 'not a directory\n' });
    const { w, warn } = collector();
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, warn);
    t.equal(c.get('s', 'k'), '1');
    t.same(w, [`conf_init_dir: scandir ${root}/etc/nfs.conf.d: Not a directory`]);
  });
});

t.test('unreadable and odd files warn and leave the defaults', async (t) => {
  t.test('a path through a regular file', async (t) => {
    const root = tmpRoot(t);
    tree(root, { file: 'x' });
    const { w, warn } = collector();
    const main = path.join(root, 'file/nfs.conf');
    const c = loadNfsConf(main, {}, warn);
    t.same(c.bindings(), []);
    t.same(w, [
      `conf_readfile: open ("${main}", O_RDONLY) failed: Not a directory`,
      `conf_init_dir: scandir ${main}.d: Not a directory`,
    ]);
  });

  t.test('a file without read permission', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'nfs.conf': '[s]\nk = 1\n' });
    const main = path.join(root, 'nfs.conf');
    fs.chmodSync(main, 0);
    const { w, warn } = collector();
    const c = loadNfsConf(main, {}, warn);
    t.same(c.bindings(), []);
    t.same(w, [`conf_readfile: open ("${main}", O_RDONLY) failed: Permission denied`]);
  });

  t.test('a FIFO does not hang the reader', async (t) => {
    const root = tmpRoot(t);
    const fifo = path.join(root, 'nfs.conf');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      t.comment('no mkfifo here: not checked');
      return;
    }
    const { w, warn } = collector();
    const c = loadNfsConf(fifo, {}, warn);
    t.same(c.bindings(), []);
    t.same(w, [`conf_readfile: "${fifo}" is not a regular file, ignored`]);
  });

  t.test('a character device reads as empty (/dev/null masks the vendor layer)', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'usr/etc/nfs.conf': '[s]\nvendor = 1\n', etc: null });
    fs.symlinkSync('/dev/null', path.join(root, 'etc/nfs.conf'));
    const c = loadNfsConf(path.join(root, 'etc/nfs.conf'), {}, () => t.fail('no warning expected'));
    t.same(c.bindings(), []);
  });

  t.test('a huge file is refused', async (t) => {
    const root = tmpRoot(t);
    const main = path.join(root, 'nfs.conf');
    fs.writeFileSync(main, '[s]\nk = 1\n' + '#'.repeat(MAX_FILE_SIZE));
    const { w, warn } = collector();
    const c = loadNfsConf(main, {}, warn);
    t.same(c.bindings(), []);
    t.same(w, [`conf_readfile: "${main}" is too large (${MAX_FILE_SIZE + 10} bytes), ignored`]);
  });

  t.test('I/O errors while reading warn and never throw', async (t) => {
    const root = tmpRoot(t);
    tree(root, { 'nfs.conf': '[s]\nk = 1\n' });
    const main = path.join(root, 'nfs.conf');
    type FsFns = { readSync: unknown; closeSync: unknown };
    const real = fsModule as unknown as FsFns; // the module object itself, not a namespace copy
    const patched = (name: keyof FsFns, fn: unknown): { c: NfsConfStore; w: string[] } => {
      const saved = real[name];
      real[name] = fn;
      try {
        const { w, warn } = collector();
        return { c: loadNfsConf(main, {}, warn), w };
      } finally {
        real[name] = saved;
      }
    };
    const fail = (err: unknown) => () => {
      throw err;
    };
    let r = patched('readSync', fail(Object.assign(new Error('io'), { code: 'EIO' })));
    t.same(r.w, [`conf_readfile: read ("${main}") failed: Input/output error`]);
    t.same(r.c.bindings(), []);
    r = patched('readSync', fail(Object.assign(new Error('odd'), { code: 'EODD' })));
    t.same(r.w, [`conf_readfile: read ("${main}") failed: EODD`]);
    r = patched('readSync', fail(new Error('no code')));
    t.same(r.w, [`conf_readfile: read ("${main}") failed: Error: no code`]);
    r = patched('readSync', () => 0);
    t.same(r.w, [], 'a file that shrank reads as what was there');
    t.same(r.c.bindings(), []);
    r = patched('closeSync', fail(Object.assign(new Error('io'), { code: 'EIO' })));
    t.same(r.w, []);
    t.equal(r.c.get('s', 'k'), '1', 'a failed close() changes nothing');
  });

  t.test('warnings are capped', async (t) => {
    const { w } = parse('junk\n'.repeat(MAX_WARNINGS + 50));
    t.equal(w.length, MAX_WARNINGS + 1);
    t.equal(w[MAX_WARNINGS - 1], `config error at test.conf:${MAX_WARNINGS}: line not empty and not an assignment`);
    t.equal(w[MAX_WARNINGS], `nfs.conf: more than ${MAX_WARNINGS} warnings, further warnings suppressed`);
  });
});

// ---------------------------------------------------------------------------
t.test('strverscmp matches glibc', async (t) => {
  // sign of glibc strverscmp(a, b), computed with the real function
  const cases: Array<[string, string, number]> = [
    ['9-b.conf', '10-a.conf', -1],
    ['10-a.conf', '9-b.conf', 1],
    ['01.conf', '1.conf', -1],
    ['001.conf', '01.conf', -1],
    ['000', '00', -1],
    ['1.9.conf', '1.10.conf', -1],
    ['1.010', '1.09', -1],
    ['1.0', '1.00', 1],
    ['a', 'a', 0],
    ['', '', 0],
    ['', 'a', -1],
    ['a1', 'a01', 1],
    ['a10', 'a9', 1],
    ['abc', 'abd', -1],
    ['a.conf', 'b-.conf', -1],
    ['zz-link.conf', 'zzz.conf', -1],
    ['x9y', 'x10y', -1],
    ['0', 'a', -1],
    ['09', '9', -1],
    ['9', '09', 1],
    ['19', '2', 1],
    ['1a', '1', 1],
    ['item#99', 'item#100', -1],
    ['alpha1', 'alpha001', 1],
    ['0.5', '0.50', -1],
    ['00-x', '0-x', -1],
  ];
  for (const [a, b, r] of cases) {
    t.equal(Math.sign(strverscmp(Buffer.from(a), Buffer.from(b))), r, `strverscmp(${a}, ${b})`);
  }
  t.same(versionSort(['b-.conf', '10-a.conf', 'a.conf', '9-b.conf', '1.10.conf', '1.9.conf', '01.conf', '001.conf']), [
    '001.conf',
    '01.conf',
    '1.9.conf',
    '1.10.conf',
    '9-b.conf',
    '10-a.conf',
    'a.conf',
    'b-.conf',
  ]);
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom('0', '1', '9', 'a', '.', '-') }), fc.string({ unit: fc.constantFrom('0', '1', '9', 'a', '.', '-') }), (a, b) => {
      const x = Math.sign(strverscmp(Buffer.from(a), Buffer.from(b)));
      const y = Math.sign(strverscmp(Buffer.from(b), Buffer.from(a)));
      return x === -y && (x === 0) === (a === b);
    }),
    { numRuns: 2000 },
  );
});

// ---------------------------------------------------------------------------
t.test('parseNfsConf never throws and never hangs', async (t) => {
  // 3 properties x 3000 runs = 9000 generated inputs, plus the big inputs below
  const tokens = fc.constantFrom(
    '[', ']', '"', "'", '=', '#', ';', '\\', '\\\n', '\n', '\r', '\t', ' ', '\0', '$', '-',
    'include', 'INCLUDE', 'sec', 'key', 'environment', 'x', 'é', '\u{1F600}', '\uFFFD',
  );
  let runs = 0;
  const check = (text: string): boolean => {
    runs++;
    const warnings: string[] = [];
    const reads: string[] = [];
    const c = parseNfsConf(text, {
      warn: (m) => void warnings.push(m),
      env: { x: 'y' },
      readInclude: (p) => {
        reads.push(p);
        return reads.length < 20 ? text : null;
      },
    });
    c.dump();
    for (const b of c.bindings()) {
      if (c.getRaw(b.section, b.key, b.subsection) !== b.value) return false;
      c.get(b.section, b.key, b.subsection);
      if (b.value === '') return false;
    }
    return warnings.length <= MAX_WARNINGS + 1;
  };
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), check), { numRuns: 3000 });
  fc.assert(fc.property(fc.array(tokens, { maxLength: 200 }).map((a) => a.join('')), check), { numRuns: 3000 });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('[s]', '[s "x"]', 'k = ', 'include = ', '  ', '#'), fc.string({ maxLength: 20 })), {
        maxLength: 30,
      }).map((a) => a.map(([p, s]) => p + s).join('\n')),
      check,
    ),
    { numRuns: 3000 },
  );
  t.equal(runs, 9000);

  // big pathological inputs stay linear
  const started = Date.now();
  for (const text of [
    '\\\n'.repeat(200_000),
    '['.repeat(500_000),
    '[s]\n' + 'k = "'.repeat(100_000) + '\n',
    '[s]\n' + 'a=b\n'.repeat(100_000),
    '='.repeat(500_000) + '\n',
    '[s]\n' + 'k = ' + ' '.repeat(500_000) + 'v\n',
  ]) {
    t.ok(check(text));
  }
  t.ok(Date.now() - started < 10_000, 'big inputs parse quickly');
});

t.test('model: on well-formed input, get() returns the last assignment', async (t) => {
  const name = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,5}$/);
  const value = fc.stringMatching(/^[A-Za-z0-9/._-]{1,8}$/);
  fc.assert(
    fc.property(fc.array(fc.tuple(name, fc.array(fc.tuple(name, value), { maxLength: 5 })), { maxLength: 6 }), (secs) => {
      let text = '';
      const model = new Map<string, string>();
      for (const [s, kvs] of secs) {
        text += `[${s}]\n`;
        for (const [k, v] of kvs) {
          if (asciiLower(k) === 'include') continue;
          text += `  ${k} = ${v}   # comment\n`;
          model.set(`${asciiLower(s)}\0${asciiLower(k)}`, v);
        }
      }
      const { c, w } = parse(text);
      if (w.length !== 0) return false;
      for (const [key, v] of model) {
        const [s, k] = key.split('\0');
        if (c.get(s.toUpperCase(), k) !== v) return false;
      }
      return c.bindings().length === model.size;
    }),
    { numRuns: 500 },
  );
  t.pass('500 generated configurations');
});

// ---------------------------------------------------------------------------
t.test("Debian's /etc/nfs.conf", async (t) => {
  const { w, warn } = collector();
  const c = loadNfsConf(path.join(FIX, 'debian-nfs.conf'), {}, warn);
  t.same(w, [], 'no warnings');
  // C: nfsconf --file debian-nfs.conf --dump
  t.equal(c.dump(), '[general]\n pipefs-directory = /run/rpc_pipefs\n\n[mountd]\n manage-gids = y\n');
  t.equal(c.get('nfsdcltrack', 'storagedir'), undefined);
  t.equal(c.get('nfsdcltrack', 'debug'), undefined);
  t.same(trackConfigFrom(c, warn), { debug: false });

  const v = collector();
  const c2 = loadNfsConf(path.join(FIX, 'debian-nfs-nfsdcltrack.conf'), {}, v.warn);
  t.same(v.w, []);
  t.equal(c2.get('nfsdcltrack', 'storagedir'), '/srv/nfs/cltrack');
  t.equal(c2.get('nfsdcltrack', 'debug'), 'General, AUTH');
  t.equal(c2.get('nfsdcld', 'storagedir'), undefined);
  t.equal(c2.get('general', 'pipefs-directory'), '/run/rpc_pipefs');
  t.same(trackConfigFrom(c2, v.warn), { storagedir: '/srv/nfs/cltrack', debug: true });
  t.same(v.w, []);
});

// ---------------------------------------------------------------------------
t.test('debug facilities (xlog_set_debug)', async (t) => {
  const p = (s: string | undefined): { mask: number; w: string[] } => {
    const { w, warn } = collector();
    return { mask: parseDebugFacilities(s, warn), w };
  };
  t.same(p(undefined), { mask: 0, w: [] });
  t.same(p('0'), { mask: 0, w: [] });
  t.same(p('1'), { mask: D_ALL, w: [] });
  t.same(p('all'), { mask: D_ALL, w: [] });
  t.same(p('ALL'), { mask: D_ALL, w: [] });
  t.same(p('general'), { mask: D_GENERAL, w: [] });
  t.same(p(' Call , AUTH ,parse'), { mask: D_CALL | D_AUTH | D_PARSE, w: [] });
  t.same(p('0, parse'), { mask: D_PARSE, w: [] });
  t.same(p(',, ,'), { mask: 0, w: [] });
  t.same(p('auth,bogus, 2 ,'), {
    mask: D_AUTH,
    w: ["unknown debug facility 'bogus'", "unknown debug facility '2'"],
  });
  t.same(p('toString'), { mask: 0, w: ["unknown debug facility 'toString'"] });
  t.same(p('all|auth'), { mask: 0, w: ["unknown debug facility 'all|auth'"] }, 'only commas separate');
});

t.test('loadTrackConfig', async (t) => {
  const root = tmpRoot(t);
  const conf = (name: string, text: string): string => {
    const f = path.join(root, name);
    fs.writeFileSync(f, text);
    return f;
  };

  const run = (env: Record<string, string | undefined>): { cfg: unknown; w: string[] } => {
    const { w, warn } = collector();
    return { cfg: loadTrackConfig(env, warn), w };
  };

  t.same(run({ NFSDCLTRACK_CONF_FILE: path.join(FIX, 'debian-nfs-nfsdcltrack.conf') }), {
    cfg: { storagedir: '/srv/nfs/cltrack', debug: true },
    w: [],
  });
  t.same(run({ NFSDCLTRACK_CONF_FILE: path.join(root, 'missing.conf') }), { cfg: { debug: false }, w: [] });
  t.same(run({ NFSDCLTRACK_CONF_FILE: conf('d0.conf', '[nfsdcltrack]\ndebug = 0\n') }), {
    cfg: { debug: false },
    w: [],
  });
  t.same(run({ NFSDCLTRACK_CONF_FILE: conf('dx.conf', '[NfsdClTrack]\nDEBUG = verbose\nStorageDir = /x\n') }), {
    cfg: { storagedir: '/x', debug: false },
    w: ["unknown debug facility 'verbose'"],
  });
  t.same(
    run({ NFSDCLTRACK_CONF_FILE: conf('gen.conf', '[general]\nstoragedir = /general\ndebug = all\n') }),
    { cfg: { debug: false }, w: [] },
    'no [general] fallback',
  );
  t.same(
    run({
      NFSDCLTRACK_CONF_FILE: conf('env.conf', '[nfsdcltrack]\nstoragedir = $STATE\ndebug = $DBG\n'),
      STATE: '/var/state',
      DBG: 'call',
    }),
    { cfg: { storagedir: '/var/state', debug: true }, w: [] },
  );
  t.same(
    run({ NFSDCLTRACK_CONF_FILE: conf('bad.conf', '[nfsdcltrack\nstoragedir = /nope\n') }),
    {
      cfg: { debug: false },
      w: [
        `config error at ${root}/bad.conf:1: non-matched ']', ignoring until next section`,
        `config error at ${root}/bad.conf:2: ignoring line not in a section`,
      ],
    },
  );
  t.same(run({ NFSDCLTRACK_CONF_FILE: root }), {
    cfg: { debug: false },
    w: [`conf_readfile: read ("${root}") failed: Is a directory`],
  });

  // without the hook (or with it empty) the real /etc/nfs.conf is read
  const real = collector();
  const expected = trackConfigFrom(loadNfsConf('/etc/nfs.conf', {}, real.warn), real.warn);
  const d = collector();
  t.same(loadTrackConfig({}, d.warn), expected);
  t.same(loadTrackConfig({ NFSDCLTRACK_CONF_FILE: '' }, d.warn), expected);
  t.same(d.w, [...real.w, ...real.w]);
});
