/**
 * DER structure-aware mutation: a valid DER document is read into a tree of TLVs, one node is changed (tag,
 * content, children dropped or repeated, lengths re-encoded), and the tree is written back with correct lengths,
 * so the result passes framing and reaches the ASN.1 schema and the checks behind it. Byte-level damage (wrong
 * lengths, cut documents) is a separate operation. Hand-written: asn1js and @peculiar/asn1-schema decode into
 * typed schemas and would refuse exactly the malformed trees we want to produce.
 */
import fc from 'fast-check';

interface Node {
  tag: number;
  /** Constructed nodes hold children; primitive ones hold bytes. */
  children?: Node[];
  content?: Buffer;
}

function readLength(buf: Buffer, at: number): { length: number; next: number } {
  const first = buf[at];
  if (first === undefined) throw new Error('cut');
  if (first < 0x80) return { length: first, next: at + 1 };
  const n = first & 0x7f;
  if (n === 0 || n > 4) throw new Error('length');
  let length = 0;
  for (let i = 0; i < n; i++) {
    const b = buf[at + 1 + i];
    if (b === undefined) throw new Error('cut');
    length = length * 256 + b;
  }
  return { length, next: at + 1 + n };
}

function parseNodes(buf: Buffer): Node[] {
  const out: Node[] = [];
  let at = 0;
  while (at < buf.length) {
    const tag = buf[at]!;
    const { length, next } = readLength(buf, at + 1);
    const content = buf.subarray(next, next + length);
    if (content.length !== length) throw new Error('cut');
    // Constructed tags, and BIT/OCTET STRINGs that happen to wrap DER (keys, extensions), are opened up.
    let children: Node[] | undefined;
    if (tag & 0x20) children = parseNodes(content);
    out.push(children ? { tag, children } : { tag, content: Buffer.from(content) });
    at = next + length;
  }
  return out;
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function encode(node: Node): Buffer {
  const body = node.children ? Buffer.concat(node.children.map(encode)) : (node.content ?? Buffer.alloc(0));
  return Buffer.concat([Buffer.from([node.tag]), encodeLength(body.length), body]);
}

function allNodes(roots: Node[]): Array<{ node: Node; parent?: Node; index: number }> {
  const out: Array<{ node: Node; parent?: Node; index: number }> = [];
  const walk = (nodes: Node[], parent?: Node) =>
    nodes.forEach((node, index) => {
      out.push({ node, parent, index });
      if (node.children) walk(node.children, node);
    });
  walk(roots);
  return out;
}

type DerOp =
  | { op: 'tag'; at: number; tag: number }
  | { op: 'content'; at: number; bytes: Uint8Array }
  | { op: 'flip'; at: number; bit: number }
  | { op: 'drop'; at: number }
  | { op: 'repeat'; at: number; times: number }
  | { op: 'empty'; at: number }
  | { op: 'bytes'; at: number; bytes: Uint8Array }
  | { op: 'cut'; at: number };

const derOp: fc.Arbitrary<DerOp> = fc.oneof(
  fc.record({ op: fc.constant('tag' as const), at: fc.nat(), tag: fc.constantFrom(0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x30, 0x31, 0xa0, 0x80, 0x00, 0xff) }),
  fc.record({ op: fc.constant('content' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 70 }) }),
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), times: fc.integer({ min: 2, max: 40 }) }),
  fc.record({ op: fc.constant('empty' as const), at: fc.nat() }),
  // Raw byte damage after encoding: broken lengths and tags that the tree cannot express.
  fc.record({ op: fc.constant('bytes' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
);

function applyTreeOp(roots: Node[], op: DerOp): void {
  const nodes = allNodes(roots);
  const { node, parent, index } = nodes[op.at % nodes.length]!;
  const siblings = parent?.children ?? roots;
  switch (op.op) {
    case 'tag':
      node.tag = op.tag;
      break;
    case 'content':
      delete node.children;
      node.content = Buffer.from(op.bytes);
      break;
    case 'flip': {
      const bytes = encode(node);
      const at = op.bit % (bytes.length * 8);
      bytes[at >> 3]! ^= 1 << (at & 7);
      try {
        const [replacement] = parseNodes(bytes);
        if (replacement) siblings[index] = replacement;
      } catch {
        // The flipped bit broke the framing: keep the node, the byte-level ops cover framing.
      }
      break;
    }
    case 'drop':
      if (parent) siblings.splice(index, 1);
      break;
    case 'repeat':
      siblings.splice(index, 0, ...Array.from({ length: op.times - 1 }, () => structuredClone(node)));
      break;
    case 'empty':
      delete node.children;
      node.content = Buffer.alloc(0);
      break;
    default:
      break;
  }
}

/** A valid DER document with 1-3 structure-aware mutations, then possibly raw byte damage. */
export function mutatedDer(seed: Buffer): fc.Arbitrary<Buffer> {
  parseNodes(seed); // fails loudly if the seed itself is not DER
  return fc.array(derOp, { minLength: 1, maxLength: 3 }).map((ops) => {
    const roots = parseNodes(seed);
    for (const op of ops) if (op.op !== 'bytes' && op.op !== 'cut') applyTreeOp(roots, op);
    let out = Buffer.concat(roots.map(encode));
    for (const op of ops) {
      if (op.op === 'bytes') {
        const at = op.at % Math.max(1, out.length);
        out = Buffer.concat([out.subarray(0, at), Buffer.from(op.bytes), out.subarray(at + op.bytes.length)]);
      } else if (op.op === 'cut') out = out.subarray(0, op.at % (out.length + 1));
    }
    return out;
  });
}
