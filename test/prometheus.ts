// Helpers for tests that scrape a metrics endpoint: read a sample's value out of the text format, and
// check the text with promtool (Debian's prometheus package; scripts/bootstrap installs it).
import { spawnSync } from 'node:child_process';

/**
 * The value of the sample `name{labels}` (labels given must all match; others may exist), or undefined.
 * Several matching samples are summed (e.g. one label left open).
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let found: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) found = (found ?? 0) + Number(m[3]);
  }
  return found;
}

/**
 * prom-client's own Node.js gauges whose names promtool's linter dislikes (gauges ending in _total);
 * they are the library's standard names, which dashboards use, so they are the only lint let through.
 */
const LIBRARY_LINT = new Set(['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']);

/**
 * promtool's verdict on the text: '' when it parses and lints clean (exit 3 is lint only; lint about
 * LIBRARY_LINT names is ignored), else what promtool said.
 */
export function promtoolProblems(text: string): string {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool could not run (install Debian's prometheus package: bash scripts/bootstrap): ${r.error.message}`);
  const said = (r.stdout + r.stderr).trim();
  if (r.status === 0) return said;
  if (r.status !== 3) return `exit ${r.status}: ${said}`;
  return said
    .split('\n')
    .filter((line) => !LIBRARY_LINT.has(line.split(' ')[0]!))
    .join('\n');
}
