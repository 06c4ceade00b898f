// The one error type of the policy engine.

/** One failing entry of the policy's `tests` (Tailscale's semantics). */
export interface TestFailure {
  /** The test's `src`. */
  src: string;
  /** Line of the test in the policy file, when known. */
  line?: number;
  /** Destinations that should have been accepted but were not ("host:port"). */
  failedAccept: string[];
  /** Destinations that should have been denied but were accepted. */
  failedDeny: string[];
  /** Tailscale's per-test message, e.g. `test(s) failed: src "alice@x": expected accept "tag:web:80", got drop`. */
  message: string;
}

/**
 * A refused policy. `message` is the reason as the user should see it; when the fault is at a place in
 * the file, `line` and `column` (1-based) say where and the message starts with "line:column: ".
 * A policy whose `tests` fail is refused with message "test(s) failed: …" and `failures` set.
 */
export class PolicyError extends Error {
  line?: number;
  column?: number;
  /** The bare reason without the position prefix (Tailscale's wording where Tailscale has one). */
  reason: string;
  failures?: TestFailure[];

  constructor(reason: string, at?: { line: number; column: number }, failures?: TestFailure[]) {
    super(at ? `${at.line}:${at.column}: ${reason}` : reason);
    this.name = 'PolicyError';
    this.reason = reason;
    if (at) {
      this.line = at.line;
      this.column = at.column;
    }
    if (failures) this.failures = failures;
  }
}
