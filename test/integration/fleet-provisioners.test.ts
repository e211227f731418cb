import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { tempDir } from '../support/cli-io';
import { RULES_FILE, dashboard, dashboardExpressions, metricNames, namesUsed, ruleExpressions } from '../support/promql-names';

const PROMETHEUS = join(__dirname, '..', '..', 'provisioners', 'prometheus');
const GRAFANA = join(__dirname, '..', '..', 'provisioners', 'grafana');
const PROMTOOL = '/usr/bin/promtool';
// Debian's prometheus package provides promtool; .ci/run installs it. Without it the rule checks
// are skipped with this message rather than passing silently.
const withPromtool = existsSync(PROMTOOL) ? it : it.skip;
if (!existsSync(PROMTOOL)) console.warn(`SKIPPED: promtool checks of the alert rules (${PROMTOOL} missing; apt-get install prometheus)`);

function promtool(args: string[], cwd = PROMETHEUS): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('the fleet provisioners', () => {
  withPromtool('promtool check rules accepts the alert rules', () => {
    const { status, output } = promtool(['check', 'rules', RULES_FILE]);
    expect(output).toMatch(/SUCCESS: \d+ rules found/);
    expect(status).toBe(0);
  });

  withPromtool('the rules pass their promtool unit tests (daemon down, RPC, claims, deadline, flat earnings, GPU, disk)', () => {
    const { status, output } = promtool(['test', 'rules', 'provider-rules.test.yml']);
    expect(output).toMatch(/SUCCESS/);
    expect(status).toBe(0);
  });

  withPromtool('promtool check config accepts the scrape example with the rules beside it', () => {
    const dir = tempDir('provider-prometheus-');
    copyFileSync(RULES_FILE, join(dir, 'provider-rules.yml'));
    const scrape = readFileSync(join(PROMETHEUS, 'provider-scrape.yml'), 'utf8').replace('/etc/prometheus/rules/provider-rules.yml', join(dir, 'provider-rules.yml'));
    writeFileSync(join(dir, 'prometheus.yml'), scrape);
    const { status, output } = promtool(['check', 'config', join(dir, 'prometheus.yml')], dir);
    expect(output).toMatch(/SUCCESS/);
    expect(status).toBe(0);
  });

  it('every alert has a for:, a severity and a fix', () => {
    const doc = YAML.parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: { alert: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    const rules = doc.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['ProviderDaemonDown', 'ProviderRpcUnreachable', 'ProviderClaimsFailing', 'ProviderGpuUnhealthy', 'ProviderDiskLow', 'ProviderEarningsFlat', 'ProviderClaimDeadlineNear']),
    );
    for (const rule of rules) {
      expect({ alert: rule.alert, for: rule.for }).toEqual({ alert: rule.alert, for: expect.stringMatching(/^\d+[smh]$/) });
      expect({ alert: rule.alert, severity: rule.labels?.severity }).toEqual({ alert: rule.alert, severity: expect.stringMatching(/^(critical|warning)$/) });
      expect({ alert: rule.alert, fix: rule.annotations?.fix }).toEqual({ alert: rule.alert, fix: expect.stringMatching(/\S{10}/) });
    }
  });

  it('the dashboard asks for its Prometheus data source and hosts through variables, and every panel uses them', () => {
    const board = dashboard();
    const variables = new Map(board.templating.list.map((v) => [v.name, v]));
    expect(variables.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variables.get('instance')).toMatchObject({ type: 'query' });
    const exprs = dashboardExpressions();
    for (const panel of board.panels.filter((p) => p.type !== 'row')) {
      expect({ panel: panel.title, uid: panel.datasource?.uid }).toEqual({ panel: panel.title, uid: '${datasource}' });
      expect({ panel: panel.title, targets: panel.targets?.length ?? 0 }).toEqual({ panel: panel.title, targets: expect.any(Number) });
      expect(panel.targets!.length).toBeGreaterThan(0);
    }
    for (const [where, expr] of exprs) {
      if (where.startsWith('variable ')) continue;
      expect({ where, filtered: expr.includes('instance=~"$instance"') }).toEqual({ where, filtered: true });
    }
    const titles = board.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const topic of ['earned', 'leases by state', 'cpu free', 'gpu health', 'gpu utilisation', 'claim failures', 'metering lag', 'chain rpc', 'docker']) expect(titles).toContain(topic);
  });

  it('the provisioning examples are YAML Grafana reads', () => {
    const dashboards = YAML.parse(readFileSync(join(GRAFANA, 'provisioning', 'dashboards.yml'), 'utf8')) as { apiVersion: number; providers: { type: string; options: { path: string } }[] };
    expect(dashboards).toMatchObject({ apiVersion: 1, providers: [{ type: 'file', options: { path: expect.stringMatching(/^\//) } }] });
    const sources = YAML.parse(readFileSync(join(GRAFANA, 'provisioning', 'datasources.yml'), 'utf8')) as { datasources: { type: string }[] };
    expect(sources.datasources[0]).toMatchObject({ type: 'prometheus' });
  });

  it('reads metric names out of PromQL, leaving out functions, labels, keywords and variables', () => {
    expect(metricNames('sum by (instance, reason) (increase(provider_claim_failures_total{instance=~"$instance", reason!="x"}[30m])) > 0')).toEqual(['provider_claim_failures_total']);
    expect(
      metricNames('min_over_time((sum by (instance) (provider_leases{state="running"}))[2h:5m]) > 0\nand on (instance)\nsum by (instance) (increase(provider_earnings_base_units_total[2h])) == 0'),
    ).toEqual(['provider_leases', 'provider_earnings_base_units_total']);
    expect(metricNames('provider_disk_free_bytes / provider_disk_size_bytes < 0.10 or vector(1e9) unless up offset 5m')).toEqual(['provider_disk_free_bytes', 'provider_disk_size_bytes', 'up']);
    expect(metricNames('rate(a_total[$__rate_interval]) * on (uuid) group_left (model) b')).toEqual(['a_total', 'b']);
  });

  it('finds names in every rule and panel', () => {
    const used = namesUsed();
    expect([...ruleExpressions().keys()].length).toBeGreaterThan(6);
    expect(used.get('provider_rpc_up')).toEqual(expect.arrayContaining(['rule ProviderRpcUnreachable']));
    expect(used.get('provider_build_info')).toEqual(expect.arrayContaining(['variable instance']));
  });
});
