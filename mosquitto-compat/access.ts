/**
 * Can Mosquitto's user reach the folder `wott mosquitto config` writes? Mosquitto started as root drops to its
 * user before it writes the pid file and its persistence, and a folder on the way it cannot enter only shows later
 * as "Unable to write pid file". This finds that before anything is written, and says which folder and the fix.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, parse } from 'node:path';

export interface UserIds {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups. */
  groups: number[];
}

/** The user's ids from `id` (so NSS users count too), or undefined when there is no such user. */
export function userIds(user: string): UserIds | undefined {
  const id = (flag: string) => execFileSync('id', [flag, '--', user], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  try {
    const uid = Number(id('-u'));
    const gid = Number(id('-g'));
    const groups = id('-G').split(/\s+/).map(Number);
    return Number.isInteger(uid) && Number.isInteger(gid) && groups.every(Number.isInteger) ? { name: user, uid, gid, groups } : undefined;
  } catch {
    return undefined;
  }
}

const BITS = { r: 4, w: 2, x: 1 } as const;
export type Access = 'x' | 'rwx';

/** What the mode bits of a file owned by uid:gid allow `ids` (POSIX permission bits; root may do anything). */
export function modeAllows(st: { mode: number; uid: number; gid: number }, ids: Pick<UserIds, 'uid' | 'gid' | 'groups'>, want: Access): boolean {
  if (ids.uid === 0) return true;
  const shift = st.uid === ids.uid ? 6 : st.gid === ids.gid || ids.groups.includes(st.gid) ? 3 : 0;
  const have = (st.mode >> shift) & 7;
  const need = [...want].reduce((n, c) => n | BITS[c as keyof typeof BITS], 0);
  return (have & need) === need;
}

/**
 * Whether `ids` may do `want` on `path`. As root, the kernel is asked as that user (`runuser … test`), so ACLs and
 * every group count; otherwise (or without runuser) the mode bits decide.
 */
function may(path: string, ids: UserIds, want: Access): boolean {
  if (process.getuid?.() === 0) {
    const flags = want === 'x' ? ['-x', path] : ['-r', path, '-a', '-w', path, '-a', '-x', path];
    const r = spawnSync('runuser', ['-u', ids.name, '--', 'test', ...flags], { stdio: 'ignore' });
    if (!r.error && r.status !== null) return r.status === 0;
  }
  return modeAllows(statSync(path), ids, want);
}

const describe = (path: string) => {
  const st = statSync(path);
  return `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid} gid ${st.gid}`;
};

/**
 * Why Mosquitto running as `user` could not use `dir` (undefined when it can, or when the user does not exist:
 * that is reported on its own). As root, `dir` itself is handed to the user afterwards, so only the folders on the
 * way count; otherwise `dir` must be the user's to write too.
 */
export function brokerFolderProblem(dir: string, user: string): string | undefined {
  const ids = userIds(user);
  if (!ids || ids.uid === process.getuid?.()) return undefined;
  const root = process.getuid?.() === 0;
  const via = `Mosquitto drops to user ${user} (when started as root) before it writes its pid file and persistence in ${dir}`;
  const otherUser = `if Mosquitto runs as another user, pass --user NAME`;
  const ancestors: string[] = [];
  for (let p = dirname(dir); ; p = dirname(p)) {
    ancestors.unshift(p);
    if (p === parse(p).root) break;
  }
  for (const p of ancestors) {
    if (!existsSync(p)) break; // created here, 0755
    if (!may(p, ids, 'x')) {
      return (
        `${user} cannot enter ${p} (${describe(p)}): ${via}. Choose an --out folder it can reach (e.g. /etc/wott-mosquitto), ` +
        `or let it through with \`chmod o+x ${p}\` (or \`setfacl -m u:${user}:x ${p}\`); ${otherUser}. Nothing was written.`
      );
    }
  }
  if (root) return undefined;
  if (!existsSync(dir)) {
    return (
      `${dir} would be created as yours, and ${user} could not write to it: ${via}. Run \`wott mosquitto config\` as root ` +
      `(it hands the folder to ${user}), or create ${dir} writable by ${user} first; ${otherUser} (e.g. --user $(id -un) if you start it yourself). Nothing was written.`
    );
  }
  for (const p of [dir, `${dir}/persistence`]) {
    if (existsSync(p) && !may(p, ids, 'rwx')) {
      return `${user} cannot write to ${p} (${describe(p)}): ${via}. Run \`wott mosquitto config\` as root (it hands the folder to ${user}), or \`chown ${user} ${p}\`; ${otherUser}. Nothing was written.`;
    }
  }
  return undefined;
}
