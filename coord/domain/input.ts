// Checks of values that come from outside (request bodies, query strings): each refusal names the field.
// Every string has a length bound and every list a size bound; text shown to people (names, labels,
// descriptions) holds no control characters, so it cannot rewrite a terminal or a log line.
import { isAddr, parsePrefix } from '../../wire/addr.js';
import { isTag } from '../../wire/names.js';
import { InvalidInput } from '../errors.js';

/** The bound of a string field that names no tighter one (codes, passwords, keys). */
export const MAX_STRING = 1024;
/** The bound of a list field that names no tighter one. */
export const MAX_LIST = 256;
export const MAX_EMAIL = 254;
export const MAX_TAGS = 64;

/** C0 and C1 controls, DEL, the line and paragraph separators, and bidirectional overrides. */
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

export function str(v: unknown, field: string, max = MAX_STRING): string {
  if (typeof v !== 'string') throw new InvalidInput(`"${field}" must be a string`);
  if (v.length > max) throw new InvalidInput(`"${field}" must have at most ${max} characters`);
  return v;
}

/** Text shown to people: a bounded string without control characters. */
export function text(v: unknown, field: string, max: number): string {
  const s = str(v, field, max);
  if (CONTROL_RE.test(s)) throw new InvalidInput(`"${field}" must not contain control characters`);
  return s;
}

/** An optional text field: absent gives `fallback`. */
export function optionalText(v: unknown, field: string, max: number, fallback = ''): string {
  return v === undefined ? fallback : text(v, field, max);
}

export function email(v: unknown, field: string): string {
  const s = str(v, field, MAX_EMAIL);
  if (!EMAIL_RE.test(s) || CONTROL_RE.test(s)) throw new InvalidInput(`"${field}": ${JSON.stringify(s.slice(0, 80))} is not an email address`);
  return s;
}

export function strList(v: unknown, field: string, maxItems = MAX_LIST, maxLen = MAX_STRING): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidInput(`"${field}" must be a list of strings`);
  if (v.length > maxItems) throw new InvalidInput(`"${field}" must have at most ${maxItems} entries`);
  if (v.some((x: string) => x.length > maxLen)) throw new InvalidInput(`each entry of "${field}" must have at most ${maxLen} characters`);
  return v as string[];
}

export function uniqueStrings(v: unknown, field: string, maxItems = MAX_LIST, maxLen = MAX_STRING): string[] {
  return [...new Set(strList(v, field, maxItems, maxLen))];
}

/** A list of tags ("tag:name"), duplicates dropped. */
export function tagList(v: unknown, field: string): string[] {
  const tags = uniqueStrings(v, field, MAX_TAGS, 128);
  const bad = tags.find((t) => !isTag(t));
  if (bad !== undefined) throw new InvalidInput(`"${field}": ${JSON.stringify(bad.slice(0, 80))} is not a tag ("tag:" and letters, digits and dashes)`);
  return tags;
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new InvalidInput(`"${field}" must be true or false`);
  return v;
}

export function isCidr(s: string): boolean {
  return s.includes('/') && parsePrefix(s) !== null;
}

export function isIp(s: string): boolean {
  return isAddr(s);
}

/** A loose email check (something@something), as the API has always applied it. */
export const EMAIL_RE = /^[^@\s]+@[^@\s]+$/;

/** A tailnet's name: letters, digits and . @ _ - (at most 100 characters). */
export const TAILNET_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9.@_-]{0,99}$/;

export function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
