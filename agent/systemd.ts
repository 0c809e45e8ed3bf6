/**
 * The agent's systemd unit, in one place for every way wott is installed: the Debian packages ship it with
 * ExecStart=/usr/bin/wott (packaging/build.ts); an npm install prints it with `wott agent service`, naming the
 * Node.js and the script that run the command, so the unit works whatever the npm prefix and PATH.
 */

/** The agent's folder in the unit: its only writable path. */
export const AGENT_UNIT_DIR = '/var/lib/wott';

/** An ExecStart word: systemd splits on spaces and accepts double quotes around a word that has them. */
export function unitWord(word: string): string {
  if (/^[A-Za-z0-9/._+:@-]+$/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** `command`: the words that start `wott` (e.g. ['/usr/bin/wott'] or [node, script]). */
export function agentUnit(command: string[], opts: { documentation?: string } = {}): string {
  return `# wott device agent: renews the device certificate automatically and publishes telemetry.
# Enroll once with \`wott agent enroll\` before enabling: systemctl enable --now wott-agent
[Unit]
Description=wott device agent (certificate renewal and telemetry)
${opts.documentation ? `Documentation=${opts.documentation}\n` : ''}Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=${[...command.map(unitWord), 'agent', 'run', '--dir', AGENT_UNIT_DIR].join(' ')}
Restart=always
RestartSec=10
# The agent reads /etc/shadow (default-credential check) and /proc of all processes, so it runs as root,
# but with the rest of the system read-only and only its own state directory writable.
User=root
ProtectSystem=strict
ReadWritePaths=${AGENT_UNIT_DIR}
PrivateTmp=true
NoNewPrivileges=true
ProtectHome=read-only
ProtectKernelTunables=true
ProtectControlGroups=true
UMask=0077

[Install]
WantedBy=multi-user.target
`;
}
