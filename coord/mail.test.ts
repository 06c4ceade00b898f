import { describe, expect, it } from 'vitest';
import { describeSmtp, parseSmtpUrl, transportOptionsOf } from './mail.js';

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

describe('the connection to the mail server', () => {
  const options = (url: string) => transportOptionsOf(parseSmtpUrl(url));

  it('sends a password only encrypted: smtps, or STARTTLS required, except on loopback', () => {
    expect(options('smtp://u:p@mail.example.com')).toMatchObject({ secure: false, requireTLS: true, auth: { user: 'u', pass: 'p' } });
    expect(options('smtp://u:p@192.0.2.10:25')).toMatchObject({ requireTLS: true });
    expect(options('smtps://u:p@mail.example.com')).toMatchObject({ secure: true, requireTLS: false });
    for (const host of ['127.0.0.1', 'localhost', '[::1]', '127.0.0.53']) expect(options(`smtp://u:p@${host}:25`), host).toMatchObject({ requireTLS: false });
    // No password to protect: STARTTLS when offered, as nodemailer does by default.
    expect(options('smtp://mail.example.com')).toMatchObject({ requireTLS: false, auth: undefined });
  });

  it('never lets a message field read a file or fetch a URL', () => {
    expect(options('smtp://mail.example.com')).toMatchObject({ disableFileAccess: true, disableUrlAccess: true });
  });
});
