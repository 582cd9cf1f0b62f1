/**
 * Text from outside made inert for a terminal and a log: control characters (C0, DEL, C1, and
 * the bidirectional overrides) are written as visible escapes (`\x1b`, `\r`, `\u202e`), so a
 * server cannot set a window title, move the cursor or print a line of its own. Pure.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\r': '\\r', '\n': '\\n', '\t': '\\t' };

export function inertText(text: string): string {
  return text.replace(CONTROL, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
