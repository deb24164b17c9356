/**
 * libpq's environment for a connection URL, for the psql and pg_prove the
 * tests start, so that no password ever reaches argv.
 */

/**
 * @param url a postgres:// connection URL
 * @returns PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE
 */
export function pgEnv(url: string): Record<string, string> {
  const u = new URL(url);
  return {
    PGHOST: u.hostname,
    PGPORT: u.port || "5432",
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)),
  };
}
