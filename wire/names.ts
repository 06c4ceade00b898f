// Names that coord and agent must agree on: tags and DNS labels.

/** Tailscale's rule for a tag: "tag:", a letter, then letters, digits and dashes. */
export const TAG_PATTERN = /^tag:[A-Za-z][A-Za-z0-9-]*$/;

export function isTag(s: unknown): boolean {
  return typeof s === 'string' && TAG_PATTERN.test(s);
}

/** A DNS label as a device name: 1 to 63 letters, digits and dashes, not starting or ending with a dash. */
export const DNS_LABEL_PATTERN = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

/** A domain name of DNS labels ("corp.example.com"; a trailing dot allowed), at most 253 characters. */
export function isDomainName(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => DNS_LABEL_PATTERN.test(l));
}

export function isDnsLabel(s: string): boolean {
  return DNS_LABEL_PATTERN.test(s);
}

/**
 * A DNS label made from any name ("My_Laptop.local" → "my-laptop-local"): lowercase, every run of other
 * characters one dash, no dash at either end, at most 63 characters; "device" when nothing is left.
 */
export function dnsLabel(name: string): string {
  const label = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || 'device';
}

/** The first label of a DNS name: "web.example-com.meshward.internal." → "web". */
export function firstLabel(fqdn: string): string {
  return fqdn.replace(/\.$/, '').split('.')[0] ?? fqdn;
}
