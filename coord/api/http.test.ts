import { describe, expect, it } from 'vitest';
import { Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed, TooManyRequests, Unauthenticated } from '../errors.js';
import { HttpError, httpErrorOf } from './http.js';

describe('httpErrorOf', () => {
  it('maps each domain error to its status, keeping message and data', () => {
    const cases: [Error, number][] = [
      [new InvalidInput('bad', [1]), 400], [new Unauthenticated('who'), 401], [new Forbidden('no'), 403],
      [new NotFound('gone'), 404], [new Conflict('taken'), 409], [new PreconditionFailed('stale'), 412],
      [new TooManyRequests('slow down'), 429],
    ];
    for (const [err, status] of cases) {
      const h = httpErrorOf(err)!;
      expect(h.status).toBe(status);
      expect(h.message).toBe(err.message);
    }
    expect(httpErrorOf(new InvalidInput('bad', [1]))!.data).toEqual([1]);
  });

  it('passes HTTP errors through and leaves unexpected errors to the caller (a 500)', () => {
    const e = new HttpError(413, 'too large');
    expect(httpErrorOf(e)).toBe(e);
    expect(httpErrorOf(new Error('boom'))).toBeUndefined();
  });
});
