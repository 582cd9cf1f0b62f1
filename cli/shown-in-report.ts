/**
 * Records of the engine's log that the drain's summary or --json report shows anyway: printed
 * on stderr too, each failure would be shown twice (issue 11 item 6). The lost-ledger error is
 * not among them: it must be seen before fetching starts.
 */
const SHOWN_IN_REPORT: ReadonlySet<string> = new Set([
  // Why the run stopped: the summary's first line and its error.
  'drain stopped',
  // Failures of one message, listed under their UIDL.
  'the server refused a message: left on the server',
  'skipped: the server cannot read it',
  'message not stored; it stays on the server for the next run',
  'a known id names another message: left on the server',
]);

/** True when the report shows what this log record says (the record can then be left out). */
export function shownInReport(message: string): boolean {
  return SHOWN_IN_REPORT.has(message);
}
