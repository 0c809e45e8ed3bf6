/**
 * CredentialService: the operators' use cases — set, rotate, remove, list, show — for the CLI (and later the API).
 * Values are write-only: nothing here returns one. Every mutation is recorded in the fleet's audit log as its
 * actor, in a transaction of its own (the credential database is a separate file), as refused when it fails; audit
 * entries name the credential, its version and its terms, never its value.
 */
import { assertTags, CREDENTIAL_NAME_RULE, isCredentialName, LINUX_USER_PATTERN } from '../protocol/index.js';
import type { CredentialRow, CredentialStore, ExposureRow } from '../store/index.js';
import type { CredentialVault } from './vault.js';

/** Default bound on one value (a key file, a password, a certificate bundle fit; a disk image does not). */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024;

export class CredentialError extends Error {
  override name = 'CredentialError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Where audit entries go (FleetService.record fits). */
export interface AuditRecorder {
  readonly actor: string;
  record(entry: { action: string; device?: string; target?: string; outcome: 'ok' | 'refused'; detail?: string }): Promise<void>;
}

export interface CredentialTermsInput {
  tags: string[];
  minScore: number;
  linuxUser?: string | undefined;
  ttlMs?: number | undefined;
}

/** What anyone may see of a credential: everything but the value. */
export interface CredentialInfo {
  name: string;
  version: number;
  tags: string[];
  minScore: number;
  linuxUser: string | null;
  ttlMs: number | null;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  size: number;
  /** Devices that held it and lost trust: rotate it. */
  exposedTo: ExposureRow[];
}

export interface CredentialServiceOptions {
  maxValueBytes?: number;
  now?: () => Date;
  /** Called after each committed change (the gateway in the same process redelivers at once). */
  onChange?: (name: string) => void;
}

export function assertCredentialName(name: string): string {
  if (!isCredentialName(name)) throw new CredentialError(400, `invalid credential name ${JSON.stringify(String(name).slice(0, 70))}: a name is ${CREDENTIAL_NAME_RULE}`);
  return name;
}

export class CredentialService {
  readonly maxValueBytes: number;

  constructor(
    private readonly store: CredentialStore,
    private readonly vault: CredentialVault,
    private readonly audit: AuditRecorder & { as(actor: string): AuditRecorder },
    private readonly options: CredentialServiceOptions = {},
  ) {
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  }

  as(actor: string): CredentialService {
    return new CredentialService(this.store, this.vault, this.audit.as(actor) as AuditRecorder & { as(actor: string): AuditRecorder }, this.options);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private async audited<T>(action: string, name: string, run: () => Promise<T>, detail: (result: T) => string): Promise<T> {
    let result: T;
    try {
      result = await run();
    } catch (err) {
      await this.audit.record({ action, target: `credential:${String(name).slice(0, 80)}`, outcome: 'refused', detail: err instanceof Error ? err.message : String(err) });
      throw err;
    }
    await this.audit.record({ action, target: `credential:${name}`, outcome: 'ok', detail: detail(result) });
    this.options.onChange?.(name);
    return result;
  }

  private checkValue(value: Buffer): void {
    if (value.length === 0) throw new CredentialError(400, 'the value is empty');
    if (value.length > this.maxValueBytes) throw new CredentialError(413, `the value is ${value.length} bytes; at most ${this.maxValueBytes} (credentials.maxValueBytes)`);
  }

  private checkTerms(terms: CredentialTermsInput): { tags: string[]; minScore: number; linuxUser: string | null; ttlMs: number | null } {
    let tags: string[];
    try {
      tags = assertTags(terms.tags);
    } catch (err) {
      throw new CredentialError(400, (err as Error).message);
    }
    if (tags.length === 0) throw new CredentialError(400, 'a credential needs at least one tag (--tags): no tags would mean every device');
    if (!(terms.minScore >= 0 && terms.minScore <= 1)) throw new CredentialError(400, '--min-score is a number from 0 to 1');
    if (terms.linuxUser !== undefined && !LINUX_USER_PATTERN.test(terms.linuxUser)) throw new CredentialError(400, `invalid Linux user name ${JSON.stringify(terms.linuxUser.slice(0, 40))}`);
    if (terms.ttlMs !== undefined && !(Number.isSafeInteger(terms.ttlMs) && terms.ttlMs > 0)) throw new CredentialError(400, 'the TTL must be a positive duration');
    return { tags, minScore: terms.minScore, linuxUser: terms.linuxUser ?? null, ttlMs: terms.ttlMs ?? null };
  }

  /** Creates the credential, or replaces value and terms of an existing one as its next version. */
  set(name: string, value: Buffer, terms: CredentialTermsInput): Promise<CredentialInfo> {
    return this.audited(
      'credential.set',
      name,
      async () => {
        assertCredentialName(name);
        this.checkValue(value);
        const checked = this.checkTerms(terms);
        // The version is assigned inside the store's transaction (compare-and-set): two concurrent sets of one
        // name get two versions, each value sealed under its own.
        const now = this.now();
        const row = await this.store.writeVersion(name, (before, version) => ({
          name,
          version,
          ...checked,
          expiresAt: checked.ttlMs === null ? null : new Date(now.getTime() + checked.ttlMs).toISOString(),
          createdAt: before?.createdAt ?? now.toISOString(),
          updatedAt: now.toISOString(),
          size: value.length,
          sealed: this.vault.seal(name, version, value),
        }));
        // A new value is a rotation: devices that lost trust only held the old one (the store cleared the flags).
        return this.info(row);
      },
      (c) => `version ${c.version}; tags ${c.tags.join(',')}; min score ${c.minScore}${c.linuxUser ? `; user ${c.linuxUser}` : ''}; ${c.size} bytes`,
    );
  }

  /** A new value under the same terms (a new version, a fresh TTL); clears the exposure flags. */
  rotate(name: string, value: Buffer): Promise<CredentialInfo> {
    return this.audited(
      'credential.rotate',
      name,
      async () => {
        assertCredentialName(name);
        this.checkValue(value);
        const now = this.now();
        // Read, check and write in one store transaction: a concurrent rotation or set waits, then builds on ours.
        const row = await this.store.writeVersion(name, (before, version) => {
          if (!before) throw new CredentialError(404, `no credential "${name}"`);
          return {
            ...before,
            version,
            expiresAt: before.ttlMs === null ? null : new Date(now.getTime() + before.ttlMs).toISOString(),
            updatedAt: now.toISOString(),
            size: value.length,
            sealed: this.vault.seal(name, version, value),
          };
        });
        return this.info(row);
      },
      (c) => `version ${c.version}; ${c.size} bytes`,
    );
  }

  /** Deletes it; devices holding it are told to delete their copy. */
  remove(name: string): Promise<void> {
    return this.audited(
      'credential.remove',
      name,
      async () => {
        assertCredentialName(name);
        if (!(await this.store.remove(name))) throw new CredentialError(404, `no credential "${name}"`);
      },
      () => 'removed',
    );
  }

  async list(): Promise<CredentialInfo[]> {
    const exposures = await this.store.exposures();
    return (await this.store.all()).map((row) => this.info(row, exposures.filter((e) => e.name === row.name)));
  }

  async show(name: string): Promise<CredentialInfo | undefined> {
    assertCredentialName(name);
    const row = await this.store.get(name);
    return row && this.info(row, await this.store.exposures(name));
  }

  /** Which devices hold a version of it now (or of every credential): delivered and not withdrawn. */
  async holders(name?: string): Promise<{ device: string; name: string; version: number; time: string }[]> {
    if (name !== undefined) assertCredentialName(name);
    const rows = await this.store.deliveries();
    return rows.filter((d) => name === undefined || d.name === name).map(({ device, name, version, time }) => ({ device, name, version, time }));
  }

  private info(row: CredentialRow, exposedTo: ExposureRow[] = []): CredentialInfo {
    const { sealed: _sealed, ...rest } = row;
    return { ...rest, exposedTo };
  }
}
