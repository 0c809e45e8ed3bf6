/** CSR parsing of hostile input, in-process: every refusal is a CaError with a specific reason. */
import t from 'tap';
import { checkCsr, decodeBase64Body, parseCsr, MAX_CSR_BYTES } from '../ca/csr.js';
import * as der from '../ca/der.js';
import { makeCsr, makeKey, openssl, tempDir } from './helpers.js';

t.test('base64 bodies', async (t) => {
  t.same(decodeBase64Body('aGVs\r\nbG8=\n'), Buffer.from('hello'), 'line breaks are accepted');
  t.throws(() => decodeBase64Body(' \n'), { status: 400, message: /empty request body/ });
  t.throws(() => decodeBase64Body('abc$def'), { status: 400, message: /not valid base64/ });
  t.throws(() => decodeBase64Body('abcde'), { status: 400, message: /not valid base64/ }, 'impossible length');
  t.throws(() => decodeBase64Body('ab=c'), { status: 400, message: /not valid base64/ }, 'padding in the middle');
});

t.test('structurally hostile CSRs', async (t) => {
  const dir = tempDir(t);
  const good = makeCsr(dir, '/CN=dev1').der;
  t.equal(parseCsr(good).commonName, 'dev1');
  t.throws(() => parseCsr(Buffer.concat([good, Buffer.from([0])])), { status: 400, message: /not a DER-encoded PKCS#10/ }, 'trailing garbage');
  t.throws(() => parseCsr(good.subarray(0, good.length - 3)), { status: 400, message: /not a DER-encoded PKCS#10/ }, 'truncated');
  t.throws(() => parseCsr(der.sequence(der.sequence(), der.sequence())), { status: 400, message: /not a DER-encoded PKCS#10/ }, 'wrong shape');
  t.throws(() => parseCsr(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30)), { status: 413, message: /CSR too large/ });
  const key = makeKey(dir);
  const twoCns = openssl(['req', '-new', '-key', key, '-subj', '/CN=dev1/CN=dev2', '-outform', 'DER']);
  t.throws(() => parseCsr(twoCns), { status: 400, message: /exactly one CN \(found 2\)/ });
  const noCn = openssl(['req', '-new', '-key', key, '-subj', '/O=nobody', '-outform', 'DER']);
  t.throws(() => parseCsr(noCn), { status: 400, message: /exactly one CN \(found 0\)/ });
  // ECDSA with SHA-1 is not accepted even though the key is P-256.
  const sha1 = openssl(['req', '-new', '-key', key, '-subj', '/CN=dev1', '-sha1', '-outform', 'DER']);
  t.throws(() => parseCsr(sha1), { status: 400, message: /not ECDSA with SHA-2/ });
  // A CSR whose signature was made by a different key.
  const other = makeCsr(dir, '/CN=dev1').der;
  const spliced = Buffer.from(good);
  const sigLen = 72;
  other.subarray(other.length - sigLen).copy(spliced, spliced.length - sigLen);
  t.throws(() => parseCsr(spliced), { status: 400, message: /signature does not verify|not a DER-encoded/ });
});

t.test('the DER walk refuses shapes PKCS#10 does not have, even when correctly signed', async (t) => {
  const { generateKeyPairSync, sign } = await import('node:crypto');
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const cn = der.sequence(der.oid('2.5.4.3'), der.utf8String('dev1'));
  const signed = (info: Buffer) => der.sequence(info, der.sequence(der.oid('1.2.840.10045.4.3.2')), der.bitString(sign('sha256', info, { key: privateKey, dsaEncoding: 'der' })));
  const info = (version: number, name: Buffer, ...extra: Buffer[]) => der.sequence(der.smallInteger(version), name, spki, der.explicit(0), ...extra);
  const good = signed(info(0, der.sequence(der.set(cn))));
  t.equal(parseCsr(good).commonName, 'dev1', 'the well-formed request is accepted');
  t.same(parseCsr(good).spki, spki, 'and its key is the canonical SPKI');
  const structure = { status: 400, message: /not a DER-encoded PKCS#10/ };
  t.throws(() => parseCsr(signed(info(1, der.sequence(der.set(cn))))), structure, 'version other than v1');
  t.throws(() => parseCsr(signed(info(0, der.sequence(der.set(cn)), der.sequence()))), structure, 'an extra field in the signed part');
  t.throws(() => parseCsr(signed(info(0, der.sequence(der.set(cn), der.set())))), structure, 'an empty RDN');
  const nonString = der.sequence(der.oid('2.5.4.10'), der.sequence(der.utf8String('x')));
  t.throws(() => parseCsr(signed(info(0, der.sequence(der.set(cn), der.set(nonString))))), structure, 'a subject value that is not a string');
  const badOid = der.sequence(der.tlv(0x06, Buffer.from([0x55, 0x84])), der.utf8String('x'));
  t.throws(() => parseCsr(signed(info(0, der.sequence(der.set(cn), der.set(badOid))))), structure, 'an OID cut short');
  const invalidUtf8 = der.sequence(der.oid('2.5.4.3'), der.tlv(0x0c, Buffer.from([0xc3, 0x28])));
  t.throws(() => parseCsr(signed(info(0, der.sequence(der.set(invalidUtf8))))), { status: 400, message: /CN is not a valid directory string/ });
});

t.test('checkCsr (the CA\'s path, signature check on the threadpool) refuses and accepts exactly as parseCsr', async (t) => {
  const dir = tempDir(t);
  const key = makeKey(dir);
  const good = makeCsr(dir, '/CN=dev1').der;
  const other = makeCsr(dir, '/CN=dev1').der;
  const spliced = Buffer.from(good);
  other.subarray(other.length - 72).copy(spliced, spliced.length - 72);
  // A signature bit flipped inside an otherwise intact request: only the signature check can refuse it.
  const flipped = Buffer.from(good);
  flipped[flipped.length - 5]! ^= 0x01;
  const cases: Array<[string, Buffer, RegExp | null]> = [
    ['good', good, null],
    ['trailing garbage', Buffer.concat([good, Buffer.from([0])]), /not a DER-encoded PKCS#10/],
    ['truncated', good.subarray(0, good.length - 3), /not a DER-encoded PKCS#10/],
    ['too large', Buffer.alloc(MAX_CSR_BYTES + 1, 0x30), /CSR too large/],
    ['two CNs', openssl(['req', '-new', '-key', key, '-subj', '/CN=dev1/CN=dev2', '-outform', 'DER']), /exactly one CN \(found 2\)/],
    ['SHA-1', openssl(['req', '-new', '-key', key, '-subj', '/CN=dev1', '-sha1', '-outform', 'DER']), /not ECDSA with SHA-2/],
    ['signature by another key', spliced, /signature does not verify|not a DER-encoded/],
    ['signature bit flipped', flipped, /signature does not verify|not a DER-encoded/],
  ];
  for (const [name, input, refusal] of cases) {
    if (!refusal) {
      const [a, b] = [parseCsr(input), await checkCsr(input)];
      t.equal(b.commonName, 'dev1', `${name}: accepted`);
      t.same(b.spki, a.spki, `${name}: the same key as parseCsr`);
      continue;
    }
    let sync: unknown;
    try {
      parseCsr(input);
    } catch (err) {
      sync = err;
    }
    t.match(sync, { message: refusal }, `${name}: parseCsr refuses`);
    await t.rejects(checkCsr(input), { status: (sync as { status: number }).status, message: (sync as Error).message }, `${name}: checkCsr refuses the same way`);
  }
});
