/**
 * What a PostgreSQL server is, for clusters (`createCluster`): primary or standby, read-only
 * sessions, replay lag, and the WAL positions read-your-writes waits on.
 */
import type { Client } from 'pg';
import type { SessionRole } from '../../src/adapter';

/**
 * One round trip: standby or not (`pg_is_in_recovery()`), read-only sessions
 * (`transaction_read_only`), and the replay lag: 0 on a primary or when everything received is
 * replayed, `now() - pg_last_xact_replay_timestamp()` while WAL waits to be replayed (a paused or
 * slow replay), NULL when no WAL receiver is streaming.
 */
export const SESSION_ROLE_SQL = `SELECT pg_is_in_recovery() AS standby,
  current_setting('transaction_read_only') = 'on' AS read_only,
  (CASE WHEN NOT pg_is_in_recovery() THEN 0
        WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN NULL
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE GREATEST(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000) END)::float8 AS lag_ms`;

/** `Adapter.sessionRole` for pg. */
export async function sessionRole(client: Client): Promise<SessionRole> {
  const { rows } = await client.query<{ standby: boolean; read_only: boolean; lag_ms: number | null }>(SESSION_ROLE_SQL);
  const row = rows[0];
  if (row === undefined) throw new Error('pg: the session role query returned no row');
  return { standby: row.standby === true, readOnly: row.read_only === true, lagMs: row.lag_ms === null ? null : Number(row.lag_ms) };
}

/** `Adapter.writePosition`: the primary's current WAL position, after a write committed. */
export async function writePosition(client: Client): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return String(rows[0]?.lsn);
}

/** `Adapter.hasReplayed`: this standby has replayed up to `position`. */
export async function hasReplayed(client: Client, position: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean | null }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [position]);
  return rows[0]?.ok === true;
}
