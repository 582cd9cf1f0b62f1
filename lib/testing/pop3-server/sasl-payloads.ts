/** Decoding the client's SASL messages: base64, XOAUTH2 and RFC 7628 OAUTHBEARER payloads. */

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The decoded bytes, or undefined when the text is not strict base64. */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64_PATTERN.test(text) ? Buffer.from(text, 'base64') : undefined;
}

/** `user=<name>\x01auth=Bearer <token>\x01\x01`. */
export function parseXoauth2(payload: Buffer): { user: string; token: string } | undefined {
  const fields = payload.toString('utf8').split('\x01');
  let user: string | undefined;
  let token: string | undefined;
  for (const field of fields) {
    if (field.startsWith('user=')) user = field.slice('user='.length);
    else if (/^auth=Bearer /i.test(field)) token = field.slice('auth=Bearer '.length);
  }
  return user !== undefined && token !== undefined ? { user, token } : undefined;
}

/** RFC 7628: gs2 header `n,a=<saslname>,` then `\x01` key=value pairs, ending `\x01\x01`. */
export function parseOauthBearer(payload: Buffer): { user: string | undefined; token: string } | undefined {
  const text = payload.toString('utf8');
  const firstSep = text.indexOf('\x01');
  if (firstSep < 0) return undefined;
  const gs2 = text.slice(0, firstSep).split(',');
  if (gs2[0] !== 'n' && gs2[0] !== 'y') return undefined; // 'p=' asks for channel binding
  const authzid = gs2.find((p) => p.startsWith('a='))?.slice(2);
  const user = authzid?.replace(/=2C/g, ',').replace(/=3D/g, '=');
  const auth = text
    .slice(firstSep + 1)
    .split('\x01')
    .find((kv) => /^auth=Bearer /i.test(kv));
  if (auth === undefined) return undefined;
  return { user: user === '' ? undefined : user, token: auth.slice('auth=Bearer '.length) };
}
