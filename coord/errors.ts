// The errors of coord's domain: what went wrong, in words the caller can act on. The store and the
// domain layer throw these; the API maps each kind to its HTTP status in one place (api/http.ts).

export class DomainError extends Error {
  /** Details for the caller (e.g. the failing policy tests), sent as `data`. */
  readonly data?: unknown;
  constructor(message: string, data?: unknown) {
    super(message);
    this.name = new.target.name;
    if (data !== undefined) this.data = data;
  }
}

/** The input is malformed or breaks a rule (400). */
export class InvalidInput extends DomainError {}
/** No valid credentials (401). */
export class Unauthenticated extends DomainError {}
/** The caller may not do this (403). */
export class Forbidden extends DomainError {}
/** No such thing, or not visible to the caller (404). */
export class NotFound extends DomainError {}
/** The change collides with what exists (409). */
export class Conflict extends DomainError {}
/** A condition the caller set (If-Match) no longer holds (412). */
export class PreconditionFailed extends DomainError {}
/** Too many attempts; try again later (429). */
export class TooManyRequests extends DomainError {}
/** The server is busy with work like this; try again in a moment (503). */
export class Unavailable extends DomainError {}
/** This server was not set up for the request (e.g. no mail server: `coord serve --smtp-url`) (501). */
export class NotConfigured extends DomainError {}
/** A server coord relies on (the mail server) failed or could not be reached; nothing was changed (502). */
export class UpstreamFailed extends DomainError {}
