/** `wott cluster status`: the nodes of a cluster as Redis knows them (see docs/cluster.md). */
import type { Command } from 'commander';
import { redisConnectionOptions } from '../broker/index.js';
import { readClusterStatus } from '../gateway/index.js';
import { loadConfig } from './config.js';

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('several gateways on one Redis (docs/cluster.md)');
  cluster
    .command('status')
    .description('the nodes alive now: connections, feed position and lag, and which node scores')
    .option('--config <file>', 'configuration file with the cluster: section (default: ./wott.yaml when present)')
    .option('--json', 'one JSON object instead of a table')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const { config, source } = loadConfig(opts.config);
      if (!config.cluster) {
        process.stderr.write(`wott: no cluster: section in ${source ?? 'the configuration (no wott.yaml here; give --config)'}\n`);
        process.exitCode = 2;
        return;
      }
      const status = await readClusterStatus(redisConnectionOptions(config.cluster.redis));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(status)}\n`);
        return;
      }
      const rows = [['NODE', 'HOST', 'PID', 'CONNECTIONS', 'FEED', 'LAG', 'SCORING', 'STARTED']];
      for (const n of status.nodes) rows.push([n.node, n.host, String(n.pid), String(n.connections), String(n.feedPosition), String(n.feedLag), n.scoring ? 'yes' : '-', n.startedAt]);
      process.stdout.write(rows.map((r) => r.join('\t')).join('\n') + '\n');
      process.stdout.write(`${status.nodes.length} node(s); scoring lease: ${status.scoringLeader ?? 'nobody (no node runs scoring)'}\n`);
    });
}
