// /tailnet/{t}/acl: the policy file (HuJSON or JSON), its validation and preview.
import { createScanner, parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { previewSubject } from '../../domain/index.js';
import { InvalidInput } from '../../errors.js';
import { HttpError } from '../http.js';
import { bodyText, route, tailnetParam, type Answer, type Call } from './call.js';

function getAcl(c: Call): Answer {
  const t = tailnetParam(c);
  const accept = String(c.req.headers.accept ?? '');
  if (accept.includes('application/hujson')) {
    return { text: t.policy, headers: { 'content-type': 'application/hujson', etag: t.policyEtag } };
  }
  // JSON: the parsed file without comments (what Tailscale answers by default).
  const errors: ParseError[] = [];
  const value = parseJsonc(t.policy, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) throw new HttpError(500, `stored policy does not parse: ${printParseErrorCode(errors[0]!.error)}`);
  return { body: value, headers: { etag: t.policyEtag } };
}

async function postAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const text = (await c.body()).toString('utf8');
  const ifMatch = c.req.headers['if-match'];
  const etag = await c.domain.policy.set(c.caller, t, text, ifMatch);
  return { text, headers: { 'content-type': 'application/hujson', etag } };
}

async function validateAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const text = await bodyText(c);
  try {
    // A list (after comments) is tests to run against the stored policy; anything else is a policy file.
    if (text !== undefined && startsWithList(text)) await c.domain.policy.validateTests(t, text);
    else await c.domain.policy.validate(t, text);
  } catch (err) {
    // Tailscale answers a validation whose tests ran and failed with 200 and the failures in the body;
    // a file that does not parse or validate is a 400.
    if (err instanceof InvalidInput && err.data !== undefined) return { body: { message: err.message, data: err.data } };
    throw err;
  }
  return { body: {} };
}

/** Whether the text's first token is "[" (comments and white space skipped); reads that one token only. */
function startsWithList(text: string): boolean {
  const OPEN_BRACKET = 3; // jsonc-parser's SyntaxKind.OpenBracketToken (a const enum)
  return createScanner(text, true).scan() === OPEN_BRACKET;
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
