// /tailnet/{t}/acl: the policy file (HuJSON or JSON), its validation and preview.
import { createScanner, parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { previewSubject } from '../../domain/index.js';
import { InvalidInput } from '../../errors.js';
import { HttpError } from '../http.js';
import { bodyText, route, tailnetParam, type Answer, type Call } from './call.js';

/** The policy text as JSON (comments dropped), what Tailscale answers unless asked for HuJSON. */
function policyJson(text: string): unknown {
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) throw new HttpError(500, `stored policy does not parse: ${printParseErrorCode(errors[0]!.error)}`);
  return value;
}

function getAcl(c: Call): Answer {
  const t = tailnetParam(c);
  // details=true: the file as base64 HuJSON with its warnings and errors (a stored policy has passed every check).
  if (c.url.searchParams.get('details') === 'true') {
    return { body: { acl: Buffer.from(t.policy).toString('base64'), warnings: [], errors: [] }, headers: { etag: t.policyEtag } };
  }
  const accept = String(c.req.headers.accept ?? '');
  if (accept.includes('application/hujson')) {
    return { text: t.policy, headers: { 'content-type': 'application/hujson', etag: t.policyEtag } };
  }
  return { body: policyJson(t.policy), headers: { etag: t.policyEtag } };
}

async function postAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const text = (await c.body()).toString('utf8');
  const ifMatch = c.req.headers['if-match'];
  const etag = await c.domain.policy.set(c.caller, t, text, ifMatch);
  // The file as sent (HuJSON), unless the caller asks for JSON only.
  const accept = String(c.req.headers.accept ?? '');
  if (accept.includes('application/json') && !accept.includes('application/hujson')) return { body: policyJson(text), headers: { etag } };
  return { text, headers: { 'content-type': 'application/hujson', etag } };
}

async function validateAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const text = await bodyText(c);
  try {
    // A list (after comments) is tests to run against the stored policy; a JSON string is a policy file in a
    // string (the spec's other JSON body); anything else is a policy file.
    const first = text === undefined ? undefined : firstToken(text);
    if (first === OPEN_BRACKET) await c.domain.policy.validateTests(t, text!);
    else if (first === STRING) await c.domain.policy.validate(t, policyInString(text!));
    else await c.domain.policy.validate(t, text);
  } catch (err) {
    // Tailscale answers a validation whose tests ran and failed with 200 and the failures in the body;
    // a file that does not parse or validate is a 400.
    if (err instanceof InvalidInput && err.data !== undefined) return { body: { message: err.message, data: err.data } };
    throw err;
  }
  return { body: {} };
}

// jsonc-parser's SyntaxKind (a const enum) for the two first tokens that choose what a validate body is.
const OPEN_BRACKET = 3;
const STRING = 10;

/** The kind of the text's first token (comments and white space skipped); reads that one token only. */
function firstToken(text: string): number {
  return createScanner(text, true).scan();
}

/** The policy text inside a body that is one JSON string. */
function policyInString(text: string): string {
  try {
    const inner: unknown = JSON.parse(text);
    if (typeof inner === 'string') return inner;
  } catch {
    // fall through
  }
  throw new InvalidInput('a body that starts with a string must be one JSON string holding the policy file');
}

async function previewAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const type = c.url.searchParams.get('type') ?? 'user';
  const previewFor = c.url.searchParams.get('previewFor');
  const who = previewSubject(type, previewFor);
  const result = c.domain.policy.preview(t, await bodyText(c), who);
  return { body: { ...result, type, previewFor } };
}

export const policyRoutes = [
  route('GET', '/tailnet/:t/acl', 'policy:read', getAcl),
  route('POST', '/tailnet/:t/acl', 'policy:write', postAcl),
  route('POST', '/tailnet/:t/acl/validate', 'policy:read', validateAcl),
  route('POST', '/tailnet/:t/acl/preview', 'policy:read', previewAcl),
];
