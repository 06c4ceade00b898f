// Device posture conditions (Tailscale's `postures` section): "node:os == 'linux'",
// "node:tsVersion >= '1.60'", "custom:tier IN ['prod', 'staging']", "custom:x IS SET", "custom:y NOT SET".

export interface PostureCond {
  attr: string;
  op: '==' | '!=' | '<' | '<=' | '>' | '>=' | 'IN' | 'NOT IN' | 'IS SET' | 'NOT SET';
  values: (string | number | boolean)[];
}

const COND = /^\s*([a-zA-Z][\w-]*:[\w.-]+)\s+(==|!=|<=|>=|<|>|IN|NOT IN|IS SET|NOT SET)\s*(.*?)\s*$/;

function parseValue(t: string): string | number | boolean | null {
  const s = t.trim();
  if (/^'[^']*'$/.test(s) || /^"[^"]*"$/.test(s)) return s.slice(1, -1);
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  return null;
}

/** Parses one condition; returns a message string when malformed. */
export function parsePostureCondition(expr: string): PostureCond | string {
  const m = COND.exec(expr);
  if (!m) return `cannot parse posture condition ${JSON.stringify(expr)} (expected e.g. "node:os == 'linux'")`;
  const attr = m[1]!;
  const op = m[2] as PostureCond['op'];
  const rest = m[3]!;
  if (op === 'IS SET' || op === 'NOT SET') {
    if (rest !== '') return `posture condition ${JSON.stringify(expr)}: nothing may follow ${op}`;
    return { attr, op, values: [] };
  }
  if (op === 'IN' || op === 'NOT IN') {
    if (!rest.startsWith('[') || !rest.endsWith(']')) return `posture condition ${JSON.stringify(expr)}: ${op} needs a list like ['a', 'b']`;
    const inner = rest.slice(1, -1).trim();
    const values: (string | number | boolean)[] = [];
    if (inner !== '') {
      for (const part of inner.split(',')) {
        const v = parseValue(part);
        if (v === null) return `posture condition ${JSON.stringify(expr)}: bad value ${part.trim()}`;
        values.push(v);
      }
    }
    return { attr, op, values };
  }
  const v = parseValue(rest);
  if (v === null) return `posture condition ${JSON.stringify(expr)}: bad value ${JSON.stringify(rest)}`;
  return { attr, op, values: [v] };
}

/** Compares versions ("1.62.0" vs "1.60") numerically part by part, other values as strings/numbers. */
function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a).replace(/^v/, '');
  const sb = String(b).replace(/^v/, '');
  if (/^\d+(\.\d+)*/.test(sa) && /^\d+(\.\d+)*/.test(sb)) {
    const pa = sa.split(/[.-]/).map((x) => parseInt(x, 10));
    const pb = sb.split(/[.-]/).map((x) => parseInt(x, 10));
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      const x = Number.isNaN(pa[i]) ? 0 : (pa[i] ?? 0);
      const y = Number.isNaN(pb[i]) ? 0 : (pb[i] ?? 0);
      if (x !== y) return x - y;
    }
    return 0;
  }
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function eq(a: unknown, b: unknown): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  return a === b;
}

/** True when the device's posture attributes satisfy the condition. Unset attributes fail all but NOT SET. */
export function postureMatches(cond: PostureCond, attrs: Record<string, unknown> | undefined): boolean {
  const has = attrs !== undefined && Object.hasOwn(attrs, cond.attr) && attrs[cond.attr] !== null && attrs[cond.attr] !== undefined;
  if (cond.op === 'IS SET') return has;
  if (cond.op === 'NOT SET') return !has;
  if (!has) return false;
  const v = attrs![cond.attr];
  const w = cond.values[0];
  switch (cond.op) {
    case '==': return eq(v, w);
    case '!=': return !eq(v, w);
    case '<': return compare(v, w) < 0;
    case '<=': return compare(v, w) <= 0;
    case '>': return compare(v, w) > 0;
    case '>=': return compare(v, w) >= 0;
    case 'IN': return cond.values.some((x) => eq(v, x));
    case 'NOT IN': return !cond.values.some((x) => eq(v, x));
  }
  return false;
}
