import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

const REPO = join(__dirname, '..', '..');
export const RULES_FILE = join(REPO, 'provisioners', 'prometheus', 'provider-rules.yml');
export const DASHBOARD_FILE = join(REPO, 'provisioners', 'grafana', 'provider-dashboard.json');

/** Words of PromQL that are not metric names when they stand outside a call. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2']);
/** Aggregations: `sum by (x) (...)` puts a clause between the word and its call. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
/** Words whose parenthesised list holds label names, not series. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric names a PromQL expression reads, by a small tokenizer: strings, label matchers
 * `{...}` and ranges `[...]` are skipped, a word followed by `(` is a function or aggregation,
 * the lists after by/without/on/ignoring/group_* are label names, `$var` is a Grafana variable,
 * and what is left of the words are metric names.
 */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let i = 0;
  const skipPast = (close: string): void => {
    const end = expr.indexOf(close, i + 1);
    if (end < 0) throw new Error(`unclosed ${expr[i]} at ${i} in ${expr}`);
    i = end + 1;
  };
  const nextNonSpace = (from: number): number => {
    let j = from;
    while (j < expr.length && /\s/.test(expr[j]!)) j += 1;
    return j;
  };
  while (i < expr.length) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') {
      // Escaped quotes do not occur in these files; a string ends at its next quote.
      skipPast(c);
    } else if (c === '{') {
      skipPast('}');
    } else if (c === '[') {
      skipPast(']');
    } else if (c === '#') {
      const end = expr.indexOf('\n', i);
      i = end < 0 ? expr.length : end + 1;
    } else if (c === '$') {
      i += 1;
      while (i < expr.length && /[\w{}]/.test(expr[i]!)) i += 1;
    } else if (/[A-Za-z_:]/.test(c)) {
      const start = i;
      while (i < expr.length && /[\w:]/.test(expr[i]!)) i += 1;
      const word = expr.slice(start, i);
      const after = nextNonSpace(i);
      if (LABEL_LISTS.has(word)) {
        if (expr[after] === '(') {
          i = after;
          skipPast(')');
        }
      } else if (expr[after] === '(' || AGGREGATIONS.has(word) || KEYWORDS.has(word.toLowerCase()) || /^(inf|nan)$/i.test(word)) {
        // A call, an operator, or a number spelled as a word.
      } else {
        names.add(word);
      }
    } else if (/[0-9.]/.test(c)) {
      // Numbers and durations (1e9, 0.10, 5m): a word starting with a digit is never a name.
      while (i < expr.length && /[\w.]/.test(expr[i]!)) i += 1;
    } else {
      i += 1;
    }
  }
  return [...names];
}

/** Every alerting rule's expression in the shipped rules file, by alert name. */
export function ruleExpressions(): Map<string, string> {
  const doc = YAML.parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return new Map(doc.groups.flatMap((g) => g.rules.map((r) => [r.alert, r.expr] as const)));
}

export interface DashboardPanel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
}

export interface Dashboard {
  title: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every expression of the shipped dashboard, by "panel <title> #n"; a template variable's label_values(metric, label) counts as its metric. */
export function dashboardExpressions(): Map<string, string> {
  const board = dashboard();
  const out = new Map<string, string>();
  for (const panel of board.panels) (panel.targets ?? []).forEach((t, n) => out.set(`panel ${panel.title} #${n + 1}`, t.expr));
  for (const variable of board.templating.list) {
    const match = /label_values\(\s*([^,)]+)\s*,/.exec(variable.definition ?? '');
    if (match) out.set(`variable ${variable.name}`, match[1]!);
  }
  return out;
}

/** Names a panel or rule reads, each with where it is read. */
export function namesUsed(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (where: string, expr: string): void => {
    for (const name of metricNames(expr)) used.set(name, [...(used.get(name) ?? []), where]);
  };
  for (const [alert, expr] of ruleExpressions()) add(`rule ${alert}`, expr);
  for (const [where, expr] of dashboardExpressions()) add(where, expr);
  return used;
}

/** The metric names with at least one sample in a /metrics text exposition. */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    // A sample, or a family the daemon declares with no sample yet (GPU utilisation while no lease holds a GPU).
    const match = /^([A-Za-z_:][\w:]*)[{ ]/.exec(line) ?? /^# TYPE ([A-Za-z_:][\w:]*) /.exec(line);
    if (match) names.add(match[1]!);
  }
  return names;
}
