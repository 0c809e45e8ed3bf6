/**
 * A QR code as an inline SVG built from the code's modules (qrcode-generator computes them): no innerHTML and no
 * data: URL, so the page's strict Content-Security-Policy stays as it is. For people at a device with a phone.
 */
import qrcode from 'qrcode-generator';

export function QrCode({ text, label }: { text: string; label: string }) {
  const qr = qrcode(0, 'M'); // 0: the smallest version that holds the text; M: 15 % of it may be unreadable
  qr.addData(text, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4; // the white border readers need
  // One path of unit squares: a few hundred nodes would be a DOM of thousands for a long command.
  let d = '';
  for (let row = 0; row < n; row++) for (let col = 0; col < n; col++) if (qr.isDark(row, col)) d += `M${col + quiet} ${row + quiet}h1v1h-1z`;
  const size = n + 2 * quiet;
  return (
    <figure class="qr">
      <svg role="img" aria-label={label} viewBox={`0 0 ${size} ${size}`} width={size * 4} height={size * 4} shape-rendering="crispEdges">
        <rect width={size} height={size} fill="#fff" />
        <path d={d} fill="#000" />
      </svg>
      <figcaption>{label}</figcaption>
    </figure>
  );
}
