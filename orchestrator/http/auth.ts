// The admin token check of the HTTP side. A server listening beyond loopback has an admin token;
// then every route but /healthz needs it. Scripts and Prometheus send `authorization: Bearer
// <token>`. A browser cannot add that header to page loads or EventSource, so opening the
// dashboard once as /?token=<token> sets an HttpOnly, same-site cookie that carries it from then
// on (the server prints that link at start).
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const TOKEN_COOKIE = 'longctx_token';

function sameSecret(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** The token a request presents: the bearer header first, then the dashboard's cookie. */
export function presentedToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    return match ? match[1] : undefined;
  }
  return cookie(req, TOKEN_COOKIE);
}

export function isAuthorized(req: IncomingMessage, adminToken: string | undefined): boolean {
  if (adminToken === undefined || adminToken === '') return true;
  const given = presentedToken(req);
  return given !== undefined && sameSecret(adminToken, given);
}

/** Whether a `?token=` query value is the admin token (the dashboard's sign-in link). */
export function isAdminToken(given: string | null, adminToken: string | undefined): boolean {
  return adminToken !== undefined && adminToken !== '' && given !== null && sameSecret(adminToken, given);
}

export function tokenCookie(token: string): string {
  return `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
}
