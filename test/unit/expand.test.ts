// Table tests for the Dockerfile word lexer, in the shape of BuildKit's envVarTest / wordsTest.
// Every row was checked against BuildKit's own lexer (frontend/dockerfile/shell) except the
// ones marked "differs", where strata deliberately does not copy a BuildKit quirk.

import { processWord, processWords, splitWordsRaw } from '../../engine/dockerfile/expand.js';

const env: Record<string, string> = {
  PWD: '/home',
  SHELL: 'bash',
  KOREAN: '한국어',
  NULL: '',
  SPACED: 'abc  def',
  LEADING: '  ab c',
  FILE: 'archive.tar.gz',
  PATHS: 'a/b/a/b',
  STAR: 'ab*',
};

type Expected = string | { error: string };
const error = (message: string): { error: string } => ({ error: message });

function check(run: () => unknown, expected: Expected | string[]): void {
  if (typeof expected === 'object' && !Array.isArray(expected)) {
    expect(run).toThrow(expected.error);
  } else {
    expect(run()).toEqual(expected);
  }
}

// input | expected, escape character `\`
const wordTable: Array<[string, Expected]> = [
  // plain text, quotes, escapes
  ['hello', 'hello'],
  ["he'll'o", 'hello'],
  ["he'llo", error('matching single-quote')],
  ["he\\'llo", "he'llo"],
  ["he\\\\'llo", error('matching single-quote')],
  ['abc\\tdef', 'abctdef'],
  ['"abc\\tdef"', 'abc\\tdef'],
  ['"abc\\\\tdef"', 'abc\\tdef'],
  ["'abc\\tdef'", 'abc\\tdef'],
  ['hello\\', 'hello'],
  ['hello\\\\', 'hello\\'],
  ['"hello', error('matching double-quote')],
  ['"hello\\"', error('matching double-quote')],
  ['"hel\'lo"', "hel'lo"],
  ["'hello\\'", 'hello\\'],
  ['"\'\'"', "''"],
  ['\'"hello"\'', '"hello"'],
  ["안'녕'하세요", '안녕하세요'],
  ['"a\\"b"', 'a"b'],
  // $ that starts no name stays literal
  ['$', '$'],
  ['$.', '$.'],
  ['he$.x', 'he$.x'],
  ['"$"', '$'],
  // names, positional and special parameters (never set)
  ['he$PWD', 'he/home'],
  ['he$pwd.', 'he.'],
  ['he$1x', 'hex'],
  ['$001aaa', 'aaa'],
  ['$@@@', '@@'],
  ['$$', ''],
  ['$KOREAN', '한국어'],
  ['he${PWD}', 'he/home'],
  ['he${hi}xx', 'hexx'],
  ['$constructor', ''],
  // escaped $, $ in quotes
  ['he\\$PWD', 'he$PWD'],
  ['he\\\\$PWD', 'he\\/home'],
  ['"he\\$PWD"', 'he$PWD'],
  ['"he\\\\$PWD"', 'he\\/home'],
  ["'he\\$PWD'", 'he\\$PWD'],
  ["'he${XX}'", 'he${XX}'],
  ['"he\'$PWD\'"', "he'/home'"],
  ['\\${}', '${}'],
  // defaults and alternatives, nested
  ['he${XXX:-000}xx', 'he000xx'],
  ['he${PWD:-000}xx', 'he/homexx'],
  ['he${XXX:-$PWD}xx', 'he/homexx'],
  ['he${XXX:-${PWD:-yyy}}xx', 'he/homexx'],
  ['he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'],
  ['he${XXX:+${PWD}}xx', 'hexx'],
  ['he${PWD:+${SHELL}}xx', 'hebashxx'],
  ['he${PWD:+${PWD}:}xx', 'he/home:xx'],
  ['he${XXX:-\\$PWD:}xx', 'he$PWD:xx'],
  ['he${XXX:-\\${PWD}z}xx', 'he${PWDz}xx'],
  ['${XXX:-"a  b"}', 'a  b'],
  ["${XXX:-'$PWD'}", '$PWD'],
  ['${aaa:-bbb}}', 'bbb}'],
  ['${aaa:-bbb {foo}', 'bbb {foo'],
  ['${999:-bbb}aaa', 'bbbaaa'],
  // with and without `:`: an empty value counts as unset only with it
  ['${NULL-d}', ''],
  ['${NULL:-d}', 'd'],
  ['${NULL+d}', 'd'],
  ['${NULL:+d}', ''],
  ['${XXX-d}', 'd'],
  ['${XXX+d}', ''],
  // required values
  ['he${PWD?}', 'he/home'],
  ['he${PWD:?}', 'he/home'],
  ['he${NULL?}', 'he'],
  ['he${XXX?}', error('XXX: is not allowed to be unset')],
  ['he${XXX:?}', error('XXX: is not allowed to be unset')],
  ['he${NULL:?}', error('NULL: is not allowed to be empty')],
  ['${XXX:?set it in $PWD}', error('XXX: set it in /home')],
  // pattern removal and replacement
  ['${FILE%.*}', 'archive.tar'],
  ['${FILE%%.*}', 'archive'],
  ['${FILE#*.}', 'tar.gz'],
  ['${FILE##*.}', 'gz'],
  ['${FILE%.t?r.gz}', 'archive'],
  ['${STAR%\\*}', 'ab'],
  ['${STAR%\\\\*}', 'ab*'],
  ['${PATHS/b/B}', 'a/B/a/b'],
  ['${PATHS//b/B}', 'a/B/a/B'],
  ['${PATHS//\\//_}', 'a_b_a_b'],
  ['${XXX%.*}', ''],
  // syntax errors
  ['${}', error('bad substitution')],
  ['he${}xx', error('bad substitution')],
  ['${{aaa}', error('bad substitution')],
  ['${:-bbb}', error('bad substitution')],
  ['he${.}', error('unsupported modifier (.)')],
  ['he${XXX:YYY}', error('unsupported modifier (:Y)')],
  ['he${PWD:=000}xx', error('unsupported modifier (:=)')],
  ['${FILE:%.*}', error('unsupported modifier (:%)')],
  ['${', error("missing '}'")],
  ['he${PWD', error("missing '}'")], // differs: BuildKit reports an unsupported modifier U+FFFD
  ['${aaa:-bbb', error("missing '}'")],
  ['${aaa:-bbb ${foo}', error("missing '}'")],
  ['${XXX:-"abc', error("missing '}'")],
  ['${PATHS/b', error("missing '/' in ${}")],
  ['${FILE%\\x}', error("invalid escape '\\x'")],
  // the error names the word
  ['a"b', error('failed to process "a\\"b"')],
];

describe('processWord', () => {
  test.each(wordTable)('%s', (input, expected) => {
    check(() => processWord(input, env), expected);
  });

  test('takes a Map as well as an object', () => {
    expect(processWord('${A}-${B:-b}', new Map([['A', 'a']]))).toBe('a-b');
  });
});

// input | expected, escape character backtick (`# escape=\``)
const backtickTable: Array<[string, Expected]> = [
  ['he`$PWD', 'he$PWD'],
  ['c:\\windows', 'c:\\windows'],
  ['a` b', 'a b'],
  ['"a`"b"', 'a"b'],
  ['"a\\b"', 'a\\b'],
  ['"a``b"', 'a`b'],
  ["'a`'", 'a`'],
  ['hello`', 'hello'],
  ['${XXX:-`}}', '}'],
];

describe('processWord with backtick escape', () => {
  test.each(backtickTable)('%s', (input, expected) => {
    check(() => processWord(input, env, '`'), expected);
  });
});

// input | expected words
const wordsTable: Array<[string, string[] | { error: string }]> = [
  ['hello', ['hello']],
  ['hello there   ', ['hello', 'there']],
  ['  a \t b  ', ['a', 'b']],
  ['hello${hi}bye', ['hellobye']],
  ['hello${SPACED}bye', ['helloabc', 'defbye']],
  ['hello"${SPACED}"bye', ['helloabc  defbye']],
  ['hello "${SPACED}"bye', ['hello', 'abc  defbye']],
  ['hello${LEADING}def', ['hello', 'ab', 'cdef']],
  ['hello"${LEADING}" def', ['hello  ab c', 'def']],
  ['hello\\ there', ['hello there']],
  ['hello\\" there', ['hello"', 'there']],
  ['hello" there', error('matching double-quote')],
  ['hello"\\\\there"', ['hello\\there']],
  ["hello'\\\\there'", ['hello\\\\there']],
  ["'a b'c d", ['a bc', 'd']],
  // BuildKit drops empty words, quoted ones too
  ['a "" b', ['a', 'b']],
  ['""', []],
  ['${NULL} x', ['x']],
  // differs: BuildKit gives ['bc'], losing the text before a nested ${…}
  ['a${XXX:-b}c', ['abc']],
  ['x ${XXX:-b c}d e', ['x', 'b', 'cd', 'e']],
  // `<<` and the blanks after it stay in one word (a heredoc marker)
  ['cat << EOF >f', ['cat', '<< EOF', '>f']],
];

describe('processWords', () => {
  test.each(wordsTable)('%s', (input, expected) => {
    check(() => processWords(input, env), expected);
  });
});

// input | expected raw words (nothing expanded or unquoted)
const rawTable: Array<[string, string[]]> = [
  ['a=1 b="x y"', ['a=1', 'b="x y"']],
  ["a='x y' c", ["a='x y'", 'c']],
  ['a=x\\ y b', ['a=x\\ y', 'b']],
  ['a="x \\" y" b', ['a="x \\" y"', 'b']],
  ["a='x \\' b", ["a='x \\'", 'b']],
  ['a=$B ${C:-d e}', ['a=$B', '${C:-d', 'e}']],
  ['  a  ', ['a']],
  ['a\\', ['a']],
  ['a="unterminated b', ['a="unterminated b']],
  ['', []],
];

describe('splitWordsRaw', () => {
  test.each(rawTable)('%s', (input, expected) => {
    expect(splitWordsRaw(input)).toEqual(expected);
  });

  test('uses the given escape character', () => {
    expect(splitWordsRaw('a=x` y b=c:\\d', '`')).toEqual(['a=x` y', 'b=c:\\d']);
  });
});
