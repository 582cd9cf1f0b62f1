/** A client's command line: its verb and arguments, and the form of it that may be logged. */

export function splitCommand(line: string): { verb: string; args: string[] } {
  const parts = line.trim().split(/ +/);
  const verb = (parts.shift() ?? '').toUpperCase();
  return { verb, args: parts.filter((p) => p.length > 0) };
}

/** The log form of a client command: no passwords, digests or SASL payloads. */
export function redactCommand(line: string): string {
  const { verb, args } = splitCommand(line);
  if (verb === 'PASS') return 'PASS <redacted>';
  if (verb === 'APOP') return `APOP ${args[0] ?? ''} <redacted>`;
  if (verb === 'AUTH' && args.length > 1) return `AUTH ${args[0] ?? ''} <redacted>`;
  return line;
}
