// Golden tables for the Dockerfile parser: snippet → expected IR, or → error and line.
// Line scanning, flags, heredocs and syntax errors were checked against docker's own parser
// (moby/buildkit frontend/dockerfile/parser).

import { DockerfileError } from '../../engine/errors.js';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import { suggestInstruction } from '../../engine/dockerfile/suggest.js';
import type { FromInstruction, Instruction, SourceRange } from '../../engine/dockerfile/instructions.js';

const r = (startLine: number, endLine = startLine): SourceRange => ({ startLine, endLine });
const fromA = (line = 1): FromInstruction => ({ kind: 'FROM', range: r(line), flags: [], text: 'FROM a', image: 'a' });

interface Golden {
  name: string;
  dockerfile: string;
  want: Instruction[];
  escapeChar?: '\\' | '`';
  directives?: Record<string, string>;
}

const goldens: Golden[] = [
  // FROM and ARG
  {
    name: 'FROM image',
    dockerfile: 'FROM alpine:3.19\n',
    want: [{ kind: 'FROM', range: r(1), flags: [], text: 'FROM alpine:3.19', image: 'alpine:3.19' }],
  },
  {
    name: 'FROM --platform image AS Name (stage names are lower-cased)',
    dockerfile: 'FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n',
    want: [
      {
        kind: 'FROM',
        range: r(1),
        flags: [{ name: 'platform', value: '$BUILDPLATFORM' }],
        text: 'FROM --platform=$BUILDPLATFORM golang:1.22 AS Build',
        image: 'golang:1.22',
        stageName: 'build',
      },
    ],
  },
  {
    name: 'ARG before FROM, several, with and without defaults',
    dockerfile: 'ARG BASE=alpine V "Q=x y"\nFROM $BASE\n',
    want: [
      {
        kind: 'ARG',
        range: r(1),
        flags: [],
        text: 'ARG BASE=alpine V "Q=x y"',
        args: [{ key: 'BASE', value: 'alpine' }, { key: 'V' }, { key: '"Q', value: 'x y"' }],
      },
      { kind: 'FROM', range: r(2), flags: [], text: 'FROM $BASE', image: '$BASE' },
    ],
  },
  // ENV and LABEL
  {
    name: 'ENV pairs keep their raw values',
    dockerfile: 'FROM a\nENV A=1 B="x y" C=a\\ b D=$A E=\n',
    want: [
      fromA(),
      {
        kind: 'ENV',
        range: r(2),
        flags: [],
        text: 'ENV A=1 B="x y" C=a\\ b D=$A E=',
        pairs: [
          { key: 'A', value: '1' },
          { key: 'B', value: '"x y"' },
          { key: 'C', value: 'a\\ b' },
          { key: 'D', value: '$A' },
          { key: 'E', value: '' },
        ],
      },
    ],
  },
  {
    name: 'ENV legacy form KEY value with spaces',
    dockerfile: 'FROM a\nENV  GREETING  hello   "big" world\n',
    want: [
      fromA(),
      {
        kind: 'ENV',
        range: r(2),
        flags: [],
        text: 'ENV GREETING  hello   "big" world',
        pairs: [{ key: 'GREETING', value: 'hello   "big" world' }],
      },
    ],
  },
  {
    name: 'LABEL pairs, and the legacy form docker also accepts',
    dockerfile: 'FROM a\nLABEL org.opencontainers.image.title="My app" version=1\nLABEL maintainer me too\n',
    want: [
      fromA(),
      {
        kind: 'LABEL',
        range: r(2),
        flags: [],
        text: 'LABEL org.opencontainers.image.title="My app" version=1',
        pairs: [
          { key: 'org.opencontainers.image.title', value: '"My app"' },
          { key: 'version', value: '1' },
        ],
      },
      { kind: 'LABEL', range: r(3), flags: [], text: 'LABEL maintainer me too', pairs: [{ key: 'maintainer', value: 'me too' }] },
    ],
  },
  // RUN, CMD, ENTRYPOINT, SHELL
  {
    name: 'RUN shell form with several flags',
    dockerfile: 'FROM a\nRUN --mount=type=cache,target=/root/.cache --network=none --security=insecure pip install -r r.txt\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2),
        flags: [
          { name: 'mount', value: 'type=cache,target=/root/.cache' },
          { name: 'network', value: 'none' },
          { name: 'security', value: 'insecure' },
        ],
        text: 'RUN --mount=type=cache,target=/root/.cache --network=none --security=insecure pip install -r r.txt',
        command: { form: 'shell', text: 'pip install -r r.txt' },
        heredocs: [],
      },
    ],
  },
  {
    name: 'RUN exec form keeps JSON escapes',
    dockerfile: 'FROM a\nRUN ["sh", "-c", "echo \\"hi\\" \\u00e9\\tx\\\\y"]\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2),
        flags: [],
        text: 'RUN ["sh", "-c", "echo \\"hi\\" \\u00e9\\tx\\\\y"]',
        command: { form: 'exec', args: ['sh', '-c', 'echo "hi" é\tx\\y'] },
        heredocs: [],
      },
    ],
  },
  {
    name: 'RUN with invalid JSON falls back to shell form',
    dockerfile: "FROM a\nRUN ['single', 'quotes']\n",
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2),
        flags: [],
        text: "RUN ['single', 'quotes']",
        command: { form: 'shell', text: "['single', 'quotes']" },
        heredocs: [],
      },
    ],
  },
  {
    name: 'RUN -- ends the flags',
    dockerfile: 'FROM a\nRUN --network=host -- --version\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2),
        flags: [{ name: 'network', value: 'host' }],
        text: 'RUN --network=host -- --version',
        command: { form: 'shell', text: '--version' },
        heredocs: [],
      },
    ],
  },
  {
    name: 'CMD and ENTRYPOINT in both forms, keywords in any case',
    dockerfile: 'from a\nentrypoint ["/bin/app", "--flag"]\nCmd serve --port 80\n',
    want: [
      { kind: 'FROM', range: r(1), flags: [], text: 'FROM a', image: 'a' },
      {
        kind: 'ENTRYPOINT',
        range: r(2),
        flags: [],
        text: 'ENTRYPOINT ["/bin/app", "--flag"]',
        command: { form: 'exec', args: ['/bin/app', '--flag'] },
      },
      { kind: 'CMD', range: r(3), flags: [], text: 'CMD serve --port 80', command: { form: 'shell', text: 'serve --port 80' } },
    ],
  },
  {
    name: 'SHELL JSON',
    dockerfile: 'FROM a\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n',
    want: [
      fromA(),
      {
        kind: 'SHELL',
        range: r(2),
        flags: [],
        text: 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
        shell: ['/bin/bash', '-o', 'pipefail', '-c'],
      },
    ],
  },
  // COPY and ADD
  {
    name: 'COPY with several flags (dockerfile-ast loses --from here)',
    dockerfile: 'FROM a\nCOPY --chown=app:app --from=build --link --chmod=0644 a "b c" /dst/\n',
    want: [
      fromA(),
      {
        kind: 'COPY',
        range: r(2),
        flags: [{ name: 'chown', value: 'app:app' }, { name: 'from', value: 'build' }, { name: 'link' }, { name: 'chmod', value: '0644' }],
        text: 'COPY --chown=app:app --from=build --link --chmod=0644 a "b c" /dst/',
        // Shell-form words split on blanks only, quotes included, as docker does.
        sources: ['a', '"b', 'c"'],
        dest: '/dst/',
        json: false,
        heredocs: [],
      },
    ],
  },
  {
    name: 'COPY JSON form and a quoted flag value',
    dockerfile: 'FROM a\nCOPY --from="my stage" ["a b", "c\\\\d", "/dst dir/"]\n',
    want: [
      fromA(),
      {
        kind: 'COPY',
        range: r(2),
        flags: [{ name: 'from', value: 'my stage' }],
        text: 'COPY --from="my stage" ["a b", "c\\\\d", "/dst dir/"]',
        sources: ['a b', 'c\\d'],
        dest: '/dst dir/',
        json: true,
        heredocs: [],
      },
    ],
  },
  {
    name: 'ADD with a checksum',
    dockerfile: 'FROM a\nADD --checksum=sha256:abc https://example.com/x.tgz /x.tgz\n',
    want: [
      fromA(),
      {
        kind: 'ADD',
        range: r(2),
        flags: [{ name: 'checksum', value: 'sha256:abc' }],
        text: 'ADD --checksum=sha256:abc https://example.com/x.tgz /x.tgz',
        sources: ['https://example.com/x.tgz'],
        dest: '/x.tgz',
        json: false,
        heredocs: [],
      },
    ],
  },
  // one-argument instructions
  {
    name: 'WORKDIR USER STOPSIGNAL MAINTAINER take the rest of the line',
    dockerfile: 'FROM a\nWORKDIR /my app\nUSER app:app\nSTOPSIGNAL SIGTERM\nMAINTAINER Jane Doe <jane@example.com>\n',
    want: [
      fromA(),
      { kind: 'WORKDIR', range: r(2), flags: [], text: 'WORKDIR /my app', path: '/my app' },
      { kind: 'USER', range: r(3), flags: [], text: 'USER app:app', user: 'app:app' },
      { kind: 'STOPSIGNAL', range: r(4), flags: [], text: 'STOPSIGNAL SIGTERM', signal: 'SIGTERM' },
      {
        kind: 'MAINTAINER',
        range: r(5),
        flags: [],
        text: 'MAINTAINER Jane Doe <jane@example.com>',
        name: 'Jane Doe <jane@example.com>',
      },
    ],
  },
  {
    name: 'EXPOSE and VOLUME words',
    dockerfile: 'FROM a\nEXPOSE 80 53/udp\t$PORT\nVOLUME /data /logs\nVOLUME [" /cache ", "/tmp"]\n',
    want: [
      fromA(),
      { kind: 'EXPOSE', range: r(2), flags: [], text: 'EXPOSE 80 53/udp\t$PORT', ports: ['80', '53/udp', '$PORT'] },
      { kind: 'VOLUME', range: r(3), flags: [], text: 'VOLUME /data /logs', paths: ['/data', '/logs'], json: false },
      { kind: 'VOLUME', range: r(4), flags: [], text: 'VOLUME [" /cache ", "/tmp"]', paths: ['/cache', '/tmp'], json: true },
    ],
  },
  // HEALTHCHECK and ONBUILD
  {
    name: 'HEALTHCHECK with flags, shell form, NONE',
    dockerfile:
      'FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD ["curl", "-f", "http://localhost/"]\n' + 'HEALTHCHECK cmd curl -f http://localhost/ || exit 1\nHEALTHCHECK NONE\n',
    want: [
      fromA(),
      {
        kind: 'HEALTHCHECK',
        range: r(2),
        flags: [
          { name: 'interval', value: '5s' },
          { name: 'retries', value: '3' },
        ],
        text: 'HEALTHCHECK --interval=5s --retries=3 CMD ["curl", "-f", "http://localhost/"]',
        command: { form: 'exec', args: ['curl', '-f', 'http://localhost/'] },
      },
      {
        kind: 'HEALTHCHECK',
        range: r(3),
        flags: [],
        text: 'HEALTHCHECK cmd curl -f http://localhost/ || exit 1',
        command: { form: 'shell', text: 'curl -f http://localhost/ || exit 1' },
      },
      { kind: 'HEALTHCHECK', range: r(4), flags: [], text: 'HEALTHCHECK NONE' },
    ],
  },
  {
    name: 'ONBUILD trigger is the rest of the line',
    dockerfile: 'FROM a\nonbuild  COPY --from=x . /app\n',
    want: [fromA(), { kind: 'ONBUILD', range: r(2), flags: [], text: 'ONBUILD COPY --from=x . /app', trigger: 'COPY --from=x . /app' }],
  },
  // continuation lines
  {
    name: 'continuation lines are joined, escape and line break removed',
    dockerfile: 'FROM a\nRUN apt-get update \\\n && apt-get install -y \\\n      curl\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 4),
        flags: [],
        text: 'RUN apt-get update  && apt-get install -y       curl',
        command: { form: 'shell', text: 'apt-get update  && apt-get install -y       curl' },
        heredocs: [],
      },
    ],
  },
  {
    name: 'comment lines inside a continuation are dropped, even one ending in the escape',
    dockerfile: 'FROM a\nRUN echo one \\\n# not part of the command\n  # indented comment \\\n  two\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 5),
        flags: [],
        text: 'RUN echo one   two',
        command: { form: 'shell', text: 'echo one   two' },
        heredocs: [],
      },
    ],
  },
  {
    name: 'empty continuation lines are skipped',
    dockerfile: 'FROM a\nRUN echo one \\\n\n   \n  two\nRUN next\n',
    want: [
      fromA(),
      { kind: 'RUN', range: r(2, 5), flags: [], text: 'RUN echo one   two', command: { form: 'shell', text: 'echo one   two' }, heredocs: [] },
      { kind: 'RUN', range: r(6), flags: [], text: 'RUN next', command: { form: 'shell', text: 'next' }, heredocs: [] },
    ],
  },
  {
    name: 'escape followed by blanks continues; an escaped escape does not',
    dockerfile: 'FROM a\nRUN echo a \\  \n b\nRUN echo c \\\\\nRUN d\n',
    want: [
      fromA(),
      { kind: 'RUN', range: r(2, 3), flags: [], text: 'RUN echo a  b', command: { form: 'shell', text: 'echo a  b' }, heredocs: [] },
      { kind: 'RUN', range: r(4), flags: [], text: 'RUN echo c \\\\', command: { form: 'shell', text: 'echo c \\\\' }, heredocs: [] },
      { kind: 'RUN', range: r(5), flags: [], text: 'RUN d', command: { form: 'shell', text: 'd' }, heredocs: [] },
    ],
  },
  {
    name: 'exec form across continuation lines',
    dockerfile: 'FROM a\nCMD ["a", \\\n     "b"]\n',
    want: [fromA(), { kind: 'CMD', range: r(2, 3), flags: [], text: 'CMD ["a",      "b"]', command: { form: 'exec', args: ['a', 'b'] } }],
  },
  {
    name: 'CRLF line endings',
    dockerfile: 'FROM a\r\nRUN echo a \\\r\n  b\r\nENV X=1\r\n',
    want: [
      fromA(),
      { kind: 'RUN', range: r(2, 3), flags: [], text: 'RUN echo a   b', command: { form: 'shell', text: 'echo a   b' }, heredocs: [] },
      { kind: 'ENV', range: r(4), flags: [], text: 'ENV X=1', pairs: [{ key: 'X', value: '1' }] },
    ],
  },
  {
    name: 'byte order mark and no final newline',
    dockerfile: '\ufeffFROM a\nUSER me',
    want: [fromA(), { kind: 'USER', range: r(2), flags: [], text: 'USER me', user: 'me' }],
  },
  // parser directives
  {
    name: 'escape directive with backtick: backtick continues, backslash is literal',
    dockerfile: '# escape=`\nFROM a\nRUN dir c:\\ `\n  /b\nCOPY c:\\src\\ c:\\dst\\\nENV P="a`" b"\n',
    escapeChar: '`',
    directives: { escape: '`' },
    want: [
      { kind: 'FROM', range: r(2), flags: [], text: 'FROM a', image: 'a' },
      { kind: 'RUN', range: r(3, 4), flags: [], text: 'RUN dir c:\\   /b', command: { form: 'shell', text: 'dir c:\\   /b' }, heredocs: [] },
      {
        kind: 'COPY',
        range: r(5),
        flags: [],
        text: 'COPY c:\\src\\ c:\\dst\\',
        sources: ['c:\\src\\'],
        dest: 'c:\\dst\\',
        json: false,
        heredocs: [],
      },
      { kind: 'ENV', range: r(6), flags: [], text: 'ENV P="a`" b"', pairs: [{ key: 'P', value: '"a`" b"' }] },
    ],
  },
  {
    name: 'syntax, check and escape directives, any case and spacing',
    dockerfile: '# syntax=docker/dockerfile:1\n  #CHECK = skip=all \n# escape=\\\nFROM a\n',
    directives: { syntax: 'docker/dockerfile:1', check: 'skip=all', escape: '\\' },
    want: [{ kind: 'FROM', range: r(4), flags: [], text: 'FROM a', image: 'a' }],
  },
  {
    name: 'a directive after a comment or blank line is only a comment',
    dockerfile: '# syntax=docker/dockerfile:1\n# hello\n# escape=`\n\nFROM a\n',
    directives: { syntax: 'docker/dockerfile:1' },
    escapeChar: '\\',
    want: [{ kind: 'FROM', range: r(5), flags: [], text: 'FROM a', image: 'a' }],
  },
  // heredocs
  {
    name: 'RUN <<EOF',
    dockerfile: 'FROM a\nRUN <<EOF\necho "$HOME"\nFROM b\nEOF\nRUN next\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 5),
        flags: [],
        text: 'RUN <<EOF',
        command: { form: 'shell', text: '<<EOF' },
        heredocs: [{ name: 'EOF', content: 'echo "$HOME"\nFROM b\n', quoted: false, stripTabs: false }],
      },
      { kind: 'RUN', range: r(6), flags: [], text: 'RUN next', command: { form: 'shell', text: 'next' }, heredocs: [] },
    ],
  },
  {
    name: 'RUN <<-EOF strips leading tabs, also before the delimiter',
    dockerfile: 'FROM a\nRUN python3 <<-EOT\n\tprint("hi")\n\t\tx = 1\n  y\n\tEOT\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 6),
        flags: [],
        text: 'RUN python3 <<-EOT',
        command: { form: 'shell', text: 'python3 <<-EOT' },
        heredocs: [{ name: 'EOT', content: 'print("hi")\nx = 1\n  y\n', quoted: false, stripTabs: true }],
      },
    ],
  },
  {
    name: 'RUN <<"EOF" and <<\'EOF\' are quoted (no expansion)',
    dockerfile: 'FROM a\nRUN <<"EOF" cat - <<\'END\'\n$A\nEOF\n$B\nEND\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 6),
        flags: [],
        text: 'RUN <<"EOF" cat - <<\'END\'',
        command: { form: 'shell', text: '<<"EOF" cat - <<\'END\'' },
        heredocs: [
          { name: 'EOF', content: '$A\n', quoted: true, stripTabs: false },
          { name: 'END', content: '$B\n', quoted: true, stripTabs: false },
        ],
      },
    ],
  },
  {
    name: 'COPY with two heredocs and a flag',
    dockerfile: 'FROM a\nCOPY --chmod=755 <<one.sh <<two.sh /bin/\necho 1\none.sh\necho 2\ntwo.sh\n',
    want: [
      fromA(),
      {
        kind: 'COPY',
        range: r(2, 6),
        flags: [{ name: 'chmod', value: '755' }],
        text: 'COPY --chmod=755 <<one.sh <<two.sh /bin/',
        sources: ['<<one.sh', '<<two.sh'],
        dest: '/bin/',
        json: false,
        heredocs: [
          { name: 'one.sh', content: 'echo 1\n', quoted: false, stripTabs: false },
          { name: 'two.sh', content: 'echo 2\n', quoted: false, stripTabs: false },
        ],
      },
    ],
  },
  {
    name: 'heredoc written << EOF, after a continuation',
    dockerfile: 'FROM a\nRUN cat << EOF \\\n  > /f\nhi\nEOF\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 5),
        flags: [],
        text: 'RUN cat << EOF   > /f',
        command: { form: 'shell', text: 'cat << EOF   > /f' },
        heredocs: [{ name: 'EOF', content: 'hi\n', quoted: false, stripTabs: false }],
      },
    ],
  },
  {
    name: 'heredoc in a CRLF file keeps its CRs, as docker does',
    dockerfile: 'FROM a\r\nRUN <<EOF\r\necho hi\r\nEOF\r\n',
    want: [
      fromA(),
      {
        kind: 'RUN',
        range: r(2, 4),
        flags: [],
        text: 'RUN <<EOF',
        command: { form: 'shell', text: '<<EOF' },
        heredocs: [{ name: 'EOF', content: 'echo hi\r\n', quoted: false, stripTabs: false }],
      },
    ],
  },
  {
    name: 'no heredoc in exec form or inside quotes',
    dockerfile: 'FROM a\nRUN ["cat", "<<EOF"]\nRUN echo "<<EOF"\n',
    want: [
      fromA(),
      { kind: 'RUN', range: r(2), flags: [], text: 'RUN ["cat", "<<EOF"]', command: { form: 'exec', args: ['cat', '<<EOF'] }, heredocs: [] },
      { kind: 'RUN', range: r(3), flags: [], text: 'RUN echo "<<EOF"', command: { form: 'shell', text: 'echo "<<EOF"' }, heredocs: [] },
    ],
  },
  {
    name: 'ONBUILD RUN <<EOF keeps the body in the trigger',
    dockerfile: 'FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n',
    want: [fromA(), { kind: 'ONBUILD', range: r(2, 4), flags: [], text: 'ONBUILD RUN <<EOF', trigger: 'RUN <<EOF\necho hi\nEOF' }],
  },
];

describe('parseDockerfile', () => {
  test.each(goldens)('$name', ({ dockerfile, want, escapeChar, directives }) => {
    const parsed = parseDockerfile(dockerfile);
    expect(parsed.instructions).toEqual(want);
    expect(parsed.escapeChar).toBe(escapeChar ?? '\\');
    expect(parsed.directives).toEqual(directives ?? (escapeChar === undefined ? {} : { escape: escapeChar }));
    expect(parsed.file).toBe('Dockerfile');
  });
});

// snippet | 1-based line | message
const failures: Array<[string, number, string]> = [
  ['', 1, 'file with no instructions'],
  ['# only a comment\n\n', 1, 'file with no instructions'],
  ['ARG A=1\n', 1, 'dockerfile contains no stages to build'],
  ['ARG A=1\nRUN echo\nFROM a\n', 2, 'RUN before the first FROM: no build stage in current context'],
  ['FROM a\nCOPPY a b\n', 2, 'unknown instruction: COPPY (did you mean COPY?)'],
  ['FROM a\nRUNN echo\n', 2, 'unknown instruction: RUNN (did you mean RUN?)'],
  ['FROM a\nworkdri /x\n', 2, 'unknown instruction: workdri (did you mean WORKDIR?)'],
  ['FROM a\nENTRYPIONT ["x"]\n', 2, 'unknown instruction: ENTRYPIONT (did you mean ENTRYPOINT?)'],
  ['FROM a\nrun\\\n  echo\nfrobnicate x\n', 4, 'unknown instruction: frobnicate'],
  ['FROM\n', 1, 'FROM requires either one or three arguments'],
  ['FROM a b\n', 1, 'FROM requires either one or three arguments'],
  ['FROM a BS b\n', 1, 'FROM requires either one or three arguments'],
  ['FROM a AS 1st\n', 1, 'invalid name for build stage: "1st", name can\'t start with a number or contain symbols'],
  ['FROM a\nCOPY onlyone\n', 2, 'COPY requires at least two arguments, but only one was provided'],
  ['FROM a\nADD\n', 2, 'ADD requires at least two arguments'],
  ['FROM a\nCOPY ["a"]\n', 2, 'COPY requires at least two arguments'],
  ['FROM a\nCOPY a <<EOF\nx\nEOF\n', 2, 'COPY cannot accept a heredoc as a destination'],
  ['FROM a\nENV\n', 2, 'ENV requires at least one argument'],
  ['FROM a\nENV A\n', 2, 'ENV must have two arguments'],
  ['FROM a\nENV A=1 B\n', 2, 'Syntax error - can\'t find = in "B". Must be of the form: name=value'],
  ['FROM a\nENV =1\n', 2, 'ENV names can not be blank'],
  ['FROM a\nLABEL a=b c\n', 2, 'Syntax error - can\'t find = in "c"'],
  ['FROM a\nLABEL\n', 2, 'LABEL requires at least one argument'],
  ['FROM a\nARG\n', 2, 'ARG requires at least one argument'],
  ['FROM a\nARG =x\n', 2, 'ARG names can not be blank'],
  ['FROM a\nSHELL /bin/sh -c\n', 2, 'SHELL requires the arguments to be in JSON form'],
  ['FROM a\nSHELL []\n', 2, 'SHELL requires at least one argument'],
  ['FROM a\nCMD ["a", 1]\n', 2, 'when using JSON array syntax, arrays must be comprised of strings only'],
  ['FROM a\nWORKDIR\n', 2, 'WORKDIR requires exactly one argument'],
  ['FROM a\nUSER\n', 2, 'USER requires exactly one argument'],
  ['FROM a\nSTOPSIGNAL\n', 2, 'STOPSIGNAL requires exactly one argument'],
  ['FROM a\nMAINTAINER\n', 2, 'MAINTAINER requires exactly one argument'],
  ['FROM a\nEXPOSE\n', 2, 'EXPOSE requires at least one argument'],
  ['FROM a\nVOLUME\n', 2, 'VOLUME requires at least one argument'],
  ['FROM a\nVOLUME ["/a", " "]\n', 2, 'VOLUME specified can not be an empty string'],
  ['FROM a\nHEALTHCHECK\n', 2, 'HEALTHCHECK requires at least one argument'],
  ['FROM a\nHEALTHCHECK --interval=1s\n', 2, 'HEALTHCHECK requires at least one argument'],
  ['FROM a\nHEALTHCHECK FOO bar\n', 2, 'Unknown type "FOO" in HEALTHCHECK (try CMD)'],
  ['FROM a\nHEALTHCHECK CMD\n', 2, 'Missing command after HEALTHCHECK CMD'],
  ['FROM a\nHEALTHCHECK NONE x\n', 2, 'HEALTHCHECK NONE takes no arguments'],
  ['FROM a\nONBUILD\n', 2, 'ONBUILD requires at least one argument'],
  ['FROM a\nONBUILD ONBUILD RUN x\n', 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"],
  ['FROM a\nONBUILD from b\n', 2, "FROM isn't allowed as an ONBUILD trigger"],
  ['FROM a\nONBUILD MAINTAINER me\n', 2, "MAINTAINER isn't allowed as an ONBUILD trigger"],
  ['FROM a\nONBUILD ENV A=1 B\n', 2, 'Syntax error - can\'t find = in "B"'],
  ['FROM a\nRUN <<EOF\necho hi\n', 2, 'unterminated heredoc EOF'],
  ['FROM a\nCOPY <<A <<B /\na\nA\nb\n', 2, 'unterminated heredoc B'],
  ['FROM a\nRUN <<-EOF\necho\n  EOF\n', 2, 'unterminated heredoc EOF'],
  ['# escape=`\n# escape=\\\nFROM a\n', 2, 'only one escape parser directive can be used'],
  ['# escape=x\nFROM a\n', 1, "invalid escape token 'x' does not match ` or \\"],
  // A syntax error anywhere is found before any instruction rule.
  ['FROM a\nCOPY x\nRUN ["a", 2]\n', 3, 'when using JSON array syntax, arrays must be comprised of strings only'],
];

describe('parseDockerfile rejects', () => {
  test.each(failures)('%j', (dockerfile, line, message) => {
    let thrown: unknown;
    try {
      parseDockerfile(dockerfile, 'app/Dockerfile');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DockerfileError);
    const err = thrown as DockerfileError;
    expect(err.location).toEqual({ file: 'app/Dockerfile', line });
    expect(err.code).toBe('DOCKERFILE_INVALID');
    expect(err.userError).toBe(true);
    expect(err.message).toContain(`app/Dockerfile:${line}: ${message}`);
  });
});

describe('an unknown instruction', () => {
  test.each([
    ['RUNN', 'RUN'],
    ['COPPY', 'COPY'],
    ['cmd2', 'CMD'],
    ['EXPOS', 'EXPOSE'],
    ['HEALTHCHEK', 'HEALTHCHECK'],
    ['AD', 'ADD'],
    ['frobnicate', undefined],
    ['RUNNNN', undefined],
    ['X', undefined],
  ])('%s suggests %s', (word, expected) => {
    expect(suggestInstruction(word)).toBe(expected);
  });

  test('with nothing near gets no suggestion', () => {
    expect(() => parseDockerfile('FROM a\nfrobnicate x\n')).toThrow(/unknown instruction: frobnicate$/);
  });
});
