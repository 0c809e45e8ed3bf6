/** The service credentials that `wott ca service --role ROLE --out DIR` writes, read back and checked. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { parseServiceCommonName } from '../protocol/index.js';

/** The subject CN of a PEM certificate. */
export function certificateCommonName(pem: string): string | undefined {
  return /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(pem).subject)?.[1];
}

/**
 * What `wott ca service --role ROLE --out DIR` wrote ({role}.key, {role}.crt, ca.crt), checked to be a
 * certificate of that role (CN `{role}:{name}`).
 */
export function readServiceCredentials(dir: string, role: string): { key: string; cert: string; ca: string; identity: string } {
  const read = (name: string, what: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      throw new Error(`cannot read the ${what} ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  const cert = read(`${role}.crt`, 'certificate');
  const identity = certificateCommonName(cert);
  const article = /^[aeiou]/.test(role) ? 'an' : 'a';
  if (!identity || parseServiceCommonName(identity)?.role !== role) throw new Error(`${join(dir, `${role}.crt`)} is not ${article} ${role} service certificate (CN ${identity ?? 'missing'})`);
  return { key: read(`${role}.key`, 'key'), cert, ca: read('ca.crt', 'CA chain'), identity };
}
