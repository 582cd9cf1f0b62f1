/**
 * The MIME parts of a message as mailsplit's Splitter yields them: how deep a part sits, which
 * leaves are attachments (mailparser's notion), and an attachment's summary cut to its limits.
 */
import type { SplitterChunk } from '@zone-eu/mailsplit';
import { clip } from './address-list.js';
import type { AttachmentSummary } from './events.js';
import { mailLibraries } from './mail-libraries.js';
import { MAX_CONTENT_TYPE_CHARS, MAX_FILENAME_CHARS, MAX_MIME_DEPTH } from './metadata-limits.js';
import { safely } from './read-safely.js';

export type PartNode = Extract<SplitterChunk, { type: 'node' }>;

/** Leaf types mailparser shows as the message text rather than as attachments. */
const BODY_TYPES: ReadonlySet<string> = new Set(['text/plain', 'text/html', 'message/delivery-status']);

export function depthOf(node: PartNode): number {
  let depth = 0;
  for (let p = node.parentNode; p; p = p.parentNode) if (++depth > MAX_MIME_DEPTH) break;
  return depth;
}

/**
 * mailparser's notion, and a file name: a leaf is an attachment when its disposition is
 * anything but inline, when it has a file name (mailparser would show a named text part as
 * text), or when it is not a text type mailparser shows as the message body.
 */
export function isAttachment(node: PartNode): boolean {
  if (node.disposition && node.disposition !== 'inline') return true;
  if (node.filename) return true;
  return !BODY_TYPES.has(node.contentType || 'text/plain');
}

export function summarizeAttachment(node: PartNode): { summary: AttachmentSummary; cut: boolean } {
  const filename = node.filename || undefined;
  let contentType = node.contentType || 'text/plain';
  if (contentType === 'application/octet-stream' && filename) {
    // as mailparser does: a better type from the file name's extension, when it knows one
    contentType = safely(() => mailLibraries().libmime.detectMimeType(filename)) || contentType;
  }
  const cut = contentType.length > MAX_CONTENT_TYPE_CHARS || (filename !== undefined && filename.length > MAX_FILENAME_CHARS);
  const summary = {} as AttachmentSummary;
  if (filename !== undefined) summary.filename = clip(filename, MAX_FILENAME_CHARS);
  summary.contentType = clip(contentType, MAX_CONTENT_TYPE_CHARS);
  summary.size = 0;
  return { summary, cut };
}
