// ADD sources: what each spelling names (BuildKit's rules, plus strata's file:// git), and
// the file name a download gets under a directory destination.
import { classifyAddSource, downloadName } from '../../engine/plan/addSource.js';

test.each([
  ['a.txt', { kind: 'local', path: 'a.txt' }],
  ['dir/*.tar', { kind: 'local', path: 'dir/*.tar' }],
  ['https://example.com/x.tgz', { kind: 'http', url: 'https://example.com/x.tgz' }],
  ['http://127.0.0.1:8080/', { kind: 'http', url: 'http://127.0.0.1:8080/' }],
  ['https://example.com/repo.git', { kind: 'git', remote: 'https://example.com/repo.git', local: false }],
  ['https://example.com/repo.git#v1', { kind: 'git', remote: 'https://example.com/repo.git', ref: 'v1', local: false }],
  ['https://example.com/repo.git#main:docs', { kind: 'git', remote: 'https://example.com/repo.git', ref: 'main', subdir: 'docs', local: false }],
  ['https://example.com/repo.git#:docs', { kind: 'git', remote: 'https://example.com/repo.git', subdir: 'docs', local: false }],
  ['git@github.com:moby/buildkit.git#v0.12', { kind: 'git', remote: 'git@github.com:moby/buildkit.git', ref: 'v0.12', local: false }],
  ['ssh://git@host/repo', { kind: 'git', remote: 'ssh://git@host/repo', local: false }],
  ['git://host/repo', { kind: 'git', remote: 'git://host/repo', local: false }],
  ['file:///srv/repo.git#main', { kind: 'git', remote: 'file:///srv/repo.git', ref: 'main', local: true }],
  ['file:///etc/passwd', undefined],
  ['ftp://host/x', undefined],
])('%s', (src, expected) => {
  expect(classifyAddSource(src)).toEqual(expected);
});

test.each([
  ['https://example.com/dl/tool-1.2.tar.gz', 'tool-1.2.tar.gz'],
  ['https://example.com/dl/tool?version=2', 'tool'],
  ['https://example.com/a%20b.txt', 'a b.txt'],
  ['https://example.com/', '__unnamed__'],
  ['https://example.com', '__unnamed__'],
])('download name of %s', (url, name) => {
  expect(downloadName(url)).toBe(name);
});
