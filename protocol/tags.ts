/**
 * Device tags: short labels operators group devices by (`site:berlin`, `camera`), and that credentials and reports
 * select devices with. Kept to a safe alphabet and a bounded number, since they end up in URLs, CSV and queries.
 */
export const TAG_PATTERN = /^[a-z0-9][a-z0-9._:-]{0,62}$/;
export const MAX_TAGS = 32;

export class InvalidTagsError extends Error {
  override name = 'InvalidTagsError';
  readonly status = 400;
}

export function isTag(value: unknown): value is string {
  return typeof value === 'string' && TAG_PATTERN.test(value);
}

/** The tags, de-duplicated and sorted; throws InvalidTagsError naming the first bad one. */
export function assertTags(tags: readonly unknown[]): string[] {
  const bad = tags.find((t) => !isTag(t));
  if (bad !== undefined) {
    throw new InvalidTagsError(`invalid tag ${JSON.stringify(String(bad).slice(0, 70))}: lower-case letters, digits, ".", "_", ":" and "-", up to 63 characters`);
  }
  const unique = [...new Set(tags as string[])].sort();
  if (unique.length > MAX_TAGS) throw new InvalidTagsError(`at most ${MAX_TAGS} tags per device (got ${unique.length})`);
  return unique;
}
