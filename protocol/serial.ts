/** Certificate serials as the CA stores them and the broker looks them up: lowercase hex, no separators, no leading zero bytes. */
export function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/:/g, '').replace(/^(00)+/, '');
}
