/**
 * Device tags: short labels operators group devices by (`site:berlin`, `camera`), and that credentials and reports
 * select devices with. Kept to a safe alphabet and a bounded number, since they end up in URLs, CSV and queries.
 */
export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:=/-]{0,62}$/;
export const TAG_RULE = '1-63 of A-Z, a-z, 0-9, ".", "_", ":", "=", "/", "-", starting with a letter or digit (so a CSV cell never starts with = + - @)';
export const MAX_TAGS = 32;

export class InvalidTagsError extends Error {
  override name = 'InvalidTagsError';
  readonly status = 400;
}

export function isTag(value: unknown): value is string {
  return typeof value === 'string' && TAG_PATTERN.test(value);
}

/** The tags, de-duplicated in their order; throws InvalidTagsError naming the first bad one. */
export function assertTags(tags: readonly unknown[]): string[] {
  const bad = tags.find((t) => !isTag(t));
  if (bad !== undefined) {
    throw new InvalidTagsError(`invalid tag ${JSON.stringify(String(bad).slice(0, 70))}: a tag is ${TAG_RULE}`);
  }
  const unique = [...new Set(tags as string[])];
  if (unique.length > MAX_TAGS) throw new InvalidTagsError(`at most ${MAX_TAGS} tags per device (got ${unique.length})`);
  return unique;
}
