// Text from others (device names, OS strings, owners, server messages) on a person's terminal: control
// characters are shown as escapes (`\x1b`, `\u202e`) so that none can move the cursor, retitle the
// window, clear the screen or reverse the text that follows.

/** C0 and C1 controls, DEL, the line and paragraph separators, and bidirectional controls. */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same, except newline and tab: for multi-line text such as a policy file. */
const CONTROLS_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escape(c: string): string {
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** One line of output: every control character escaped. */
export function printable(s: string): string {
  return s.replace(CONTROLS, escape);
}

/** Multi-line output: newlines and tabs kept, every other control character escaped. */
export function printableText(s: string): string {
  return s.replace(CONTROLS_BUT_LINES, escape);
}
