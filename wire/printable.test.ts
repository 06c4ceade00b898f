import { describe, expect, it } from 'vitest';
import { printable, printableText } from './printable.js';

describe('printable', () => {
  it('escapes terminal controls, keeps ordinary text', () => {
    expect(printable('web1 Linux 6.1 — ü')).toBe('web1 Linux 6.1 — ü');
    expect(printable('\u001b[2J\u001b]0;x\u0007\r\n\u009b\u202eevil')).toBe('\\x1b[2J\\x1b]0;x\\x07\\x0d\\x0a\\x9b\\u202eevil');
    expect(printableText('a\n\tb\u001b[31m')).toBe('a\n\tb\\x1b[31m');
  });
});
