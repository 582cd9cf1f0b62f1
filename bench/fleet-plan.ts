/**
 * The mailboxes of the fleet simulation and what each is for. Pure: the options in, the list
 * out. Most mailboxes are small and drained every `bulkEveryMinutes`; a few are drained every
 * 5 minutes (the worst case for the queue bound): ones that keep receiving mail, ones whose
 * secret holds a wrong password, ones held busy by another POP3 session, the big one, the one
 * added and the one paused mid-run.
 */

export type FleetRole = 'bulk' | 'active' | 'failing' | 'busy' | 'big' | 'added' | 'paused';

export interface FleetMailboxPlan {
  id: string;
  user: string;
  role: FleetRole;
  everyMinutes: number;
  /** Messages in the mailbox before the simulation starts. */
  initialMessages: number;
  /** Limits set in the registry entry. */
  maxMessagesPerRun?: number;
}

export interface FleetPlanOptions {
  mailboxes: number;
  bulkEveryMinutes: number;
  failing: number;
  busy: number;
  active: number;
  bigMessages: number;
  /** The big mailbox's per-run message budget (limits.maxMessagesPerRun). */
  bigPerRun: number;
}

export const FAST_EVERY_MINUTES = 5;

export function planFleet(o: FleetPlanOptions): FleetMailboxPlan[] {
  const special = o.failing + o.busy + o.active + 3;
  if (o.mailboxes < special + 1) throw new Error(`--mailboxes must be at least ${special + 1} (the special mailboxes plus one bulk)`);
  const out: FleetMailboxPlan[] = [];
  const add = (role: FleetRole, n: number, fields: Partial<FleetMailboxPlan> = {}): void => {
    for (let i = 0; i < n; i++) {
      const user = `${role}${String(i + 1).padStart(4, '0')}`;
      out.push({ id: `mbx-${user}`, user, role, everyMinutes: FAST_EVERY_MINUTES, initialMessages: 2, ...fields });
    }
  };
  add('big', 1, { initialMessages: o.bigMessages, maxMessagesPerRun: o.bigPerRun });
  add('failing', o.failing);
  add('busy', o.busy);
  add('active', o.active);
  add('added', 1);
  add('paused', 1);
  const bulk = o.mailboxes - out.length;
  for (let i = 0; i < bulk; i++) {
    const user = `bulk${String(i + 1).padStart(5, '0')}`;
    // A third start empty: their runs are login, STAT/UIDL, QUIT.
    out.push({ id: `mbx-${user}`, user, role: 'bulk', everyMinutes: o.bulkEveryMinutes, initialMessages: i % 3 });
  }
  return out;
}
