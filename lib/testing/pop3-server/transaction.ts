/** The TRANSACTION state: STAT, LIST, UIDL, RETR, TOP, DELE, RSET and NOOP. */
import { findMessage, maildropTotals, type SessionMessage } from './mailbox.js';
import type { Session } from './session.js';
import { encodeMultilineBody, extractTop } from './wire.js';

export async function transactionCommand(session: Session, verb: string, args: string[]): Promise<void> {
  const { conn } = session;
  const f = session.server.features;
  switch (verb) {
    case 'STAT': {
      const { count, octets } = maildropTotals(session.messages);
      return conn.writeLine(`+OK ${count} ${octets}`);
    }
    case 'LIST':
    case 'UIDL': {
      if (verb === 'UIDL' && !f.uidl) return conn.writeLine('-ERR Unknown command');
      const field = (m: SessionMessage): string => (verb === 'LIST' ? String(m.size) : m.uid);
      if (args.length > 1) return conn.writeLine(`-ERR Syntax: ${verb} [msg]`);
      if (args.length === 1) {
        const m = session.message(args[0]);
        return conn.writeLine(m === undefined ? '-ERR No such message' : `+OK ${m.number} ${field(m)}`);
      }
      const { count, octets } = maildropTotals(session.messages);
      const lines = session.messages.filter((m) => !m.deleted).map((m) => `${m.number} ${field(m)}`);
      return conn.writeMultiline(`+OK ${count} messages (${octets} octets)`, lines);
    }
    case 'RETR': {
      if (args.length !== 1) return conn.writeLine('-ERR Syntax: RETR msg');
      const m = session.message(args[0]);
      if (m === undefined) return conn.writeLine('-ERR No such message');
      return conn.writeBody(`+OK ${m.size} octets`, encodeMultilineBody(m.bytes));
    }
    case 'TOP': {
      if (!f.top) return conn.writeLine('-ERR Unknown command');
      const lines = args[1];
      if (args.length !== 2 || lines === undefined || !/^[0-9]{1,9}$/.test(lines)) {
        return conn.writeLine('-ERR Syntax: TOP msg n');
      }
      const m = session.message(args[0]);
      if (m === undefined) return conn.writeLine('-ERR No such message');
      return conn.writeBody('+OK', encodeMultilineBody(extractTop(m.bytes, Number(lines))));
    }
    case 'DELE': {
      if (args.length !== 1) return conn.writeLine('-ERR Syntax: DELE msg');
      const m = findMessage(session.messages, args[0]);
      if (m === undefined) return conn.writeLine('-ERR No such message');
      if (m.deleted) return conn.writeLine(`-ERR Message ${m.number} already deleted`);
      m.deleted = true;
      return conn.writeLine(`+OK Message ${m.number} deleted`);
    }
    case 'RSET': {
      for (const m of session.messages) m.deleted = false;
      const { count, octets } = maildropTotals(session.messages);
      return conn.writeLine(`+OK maildrop has ${count} messages (${octets} octets)`);
    }
    default: // NOOP
      return conn.writeLine('+OK');
  }
}
