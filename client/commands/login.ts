// `strata login` / `strata logout`: docker's commands, writing docker's config.json (or the
// credential helper it names), so strata, docker and skopeo share one login.
import { UserInputError } from '../../engine/errors.js';
import { login, logout } from '../../engine/registry/login.js';

export interface LoginOptions {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new UserInputError('LOGIN_INPUT', 'login: --password-stdin: more than 64 KiB on standard input');
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function runLogin(server: string | undefined, opts: LoginOptions, out: (line: string) => void = (l) => console.log(l)): Promise<void> {
  if (opts.password !== undefined && opts.passwordStdin) throw new UserInputError('LOGIN_USAGE', 'login: --password and --password-stdin are mutually exclusive');
  if (opts.passwordStdin && !opts.username) throw new UserInputError('LOGIN_USAGE', 'login: --password-stdin needs --username');
  let password = opts.password;
  if (opts.passwordStdin) password = (await readStdin()).replace(/\r?\n$/, '');
  else if (password !== undefined) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  if (!opts.username || !password) throw new UserInputError('LOGIN_USAGE', 'login: give --username and --password-stdin (or --password)');
  const r = await login(server, opts.username, password);
  out(`Credentials stored in ${r.storedIn}`);
  out('Login Succeeded');
}

export async function runLogout(server: string | undefined, out: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const r = await logout(server);
  out(r.removed ? `Removing login credentials for ${r.registry}` : `Not logged in to ${r.registry}`);
}
