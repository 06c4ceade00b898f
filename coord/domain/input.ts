// Checks of values that come from outside (request bodies, query strings): each refusal names the field.
import { isAddr, parsePrefix } from '../../wire/addr.js';
import { InvalidInput } from '../errors.js';

export function str(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new InvalidInput(`"${field}" must be a string`);
  return v;
}

export function strList(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidInput(`"${field}" must be a list of strings`);
  return v as string[];
}

export function uniqueStrings(v: unknown, field: string): string[] {
  return [...new Set(strList(v, field))];
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
