import { describe, expect, it } from 'vitest';
import { describeSmtp, parseSmtpUrl } from './mail.js';

describe('the SMTP URL', () => {
  it('gives host, port, TLS mode and the percent-decoded credentials', () => {
    expect(parseSmtpUrl('smtp://coord%40example.com:p%40ss%3Aword@mail.example.com:2525')).toEqual({
      host: 'mail.example.com', port: 2525, secure: false, user: 'coord@example.com', pass: 'p@ss:word',
    });
    expect(parseSmtpUrl('smtps://u:p@mail.example.com')).toMatchObject({ port: 465, secure: true });
    expect(parseSmtpUrl('smtp://u:p@mail.example.com/')).toMatchObject({ port: 587, secure: false });
    expect(parseSmtpUrl('smtp://[::1]:25')).toEqual({ host: '::1', port: 25, secure: false, user: '', pass: '' });
  });

  it('refuses what it cannot use, and never repeats the password in the error', () => {
    const secret = 'hunter2-very-secret';
    for (const [url, why] of [
      [`http://u:${secret}@mail.example.com`, /must start with smtp:\/\/ or smtps:\/\//],
      [`smtp://u:${secret}@mail.example.com/path`, /path, query or fragment/],
      [`smtp://u:${secret}@mail.example.com?x=1`, /path, query or fragment/],
      [`smtp://:${secret}@mail.example.com`, /password but no user/],
      [`smtp://u:${secret}%zz@mail.example.com`, /percent-encoding/],
      [`not a url ${secret}`, /not a URL/],
    ] as const) {
      let message = '';
      try {
        parseSmtpUrl(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, url).toMatch(why);
      expect(message).not.toContain(secret);
    }
  });

  it('is described without its password', () => {
    expect(describeSmtp(parseSmtpUrl('smtps://coord%40example.com:secret@mail.example.com'))).toBe('smtps://coord%40example.com@mail.example.com:465');
    expect(describeSmtp(parseSmtpUrl('smtp://[::1]:2525'))).toBe('smtp://[::1]:2525');
  });
});
