// Custom posture attributes of a device (`custom:<name>`), set through the admin API and tested by the
// policy's `postures` and grants' `srcPosture`. Stored in the device's `posture` column as
// { "custom:tier": { "value": "prod", "expires": "<RFC 3339>"? } }; an expired one no longer exists.
import type { Device } from './store/index.js';

export type AttributeValue = string | number | boolean;
export interface StoredAttribute {
  value: AttributeValue;
  expires?: string;
}

/** `custom:` and 1–50 letters, digits or underscores (Tailscale's rule for custom attribute names). */
export const CUSTOM_ATTRIBUTE_KEY = /^custom:[A-Za-z0-9_]{1,50}$/;
/** At most this many custom attributes per device. */
export const MAX_CUSTOM_ATTRIBUTES = 64;

function stored(d: Device): Record<string, StoredAttribute> {
  const out: Record<string, StoredAttribute> = {};
  for (const [k, v] of Object.entries(d.posture ?? {})) {
    if (!CUSTOM_ATTRIBUTE_KEY.test(k) || !v || typeof v !== 'object') continue;
    const a = v as StoredAttribute;
    if (typeof a.value === 'string' || typeof a.value === 'number' || typeof a.value === 'boolean') out[k] = a;
  }
  return out;
}

/** The device's custom attributes still in force at `at` (ms), with their expiries. */
export function customAttributes(d: Device, at = Date.now()): Record<string, StoredAttribute> {
  const out: Record<string, StoredAttribute> = {};
  for (const [k, a] of Object.entries(stored(d))) if (a.expires === undefined || Date.parse(a.expires) > at) out[k] = a;
  return out;
}

/** Whether one of the device's attributes expired in (`since`, `until`]: its rules must be compiled again. */
export function attributeExpiredBetween(d: Device, since: number, until: number): boolean {
  return Object.values(stored(d)).some((a) => {
    if (a.expires === undefined) return false;
    const t = Date.parse(a.expires);
    return t > since && t <= until;
  });
}

/** Every attribute the policy engine tests: the node's own (`node:os`, `node:tsVersion`) and the custom ones in force. */
export function postureOf(d: Device, at = Date.now()): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = { 'node:os': d.os, 'node:tsVersion': d.clientVersion };
  for (const [k, a] of Object.entries(customAttributes(d, at))) out[k] = a.value;
  return out;
}
