// The dashboard's files, as the build left them in dist/orchestrator/dashboard/ (index.html and
// the bundle esbuild made of orchestrator/dashboard/ with its npm dependencies). Nothing comes
// from the internet. Only plain file names in that one folder are served: no paths, no traversal.
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/orchestrator/dashboard, beside this file's compiled folder. */
export const DEFAULT_DASHBOARD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboard');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/** Script and styles from this origin only: the page works offline and loads nothing else. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; " +
  "base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/**
 * Serves `name` from `dir`. Returns false when the name is not a file there (the caller answers
 * 404); a missing index.html means the dashboard was never built, which says so.
 */
export async function serveDashboardFile(dir: string, name: string, res: ServerResponse): Promise<boolean> {
  const type = CONTENT_TYPES[extname(name)];
  if (!SAFE_NAME.test(name) || type === undefined) return false;
  let body: Buffer;
  try {
    body = await readFile(join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (name !== 'index.html') return false;
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`the dashboard is not built (no ${join(dir, name)}): run 'make build'\n`);
    return true;
  }
  res.writeHead(200, {
    'content-type': type,
    'content-length': body.length,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'content-security-policy': CONTENT_SECURITY_POLICY,
  });
  res.end(body);
  return true;
}
