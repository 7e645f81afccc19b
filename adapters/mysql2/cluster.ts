/**
 * What a MySQL / MariaDB server is, for clusters (`createCluster`): a replica (`@@read_only`) and
 * its lag (`SHOW SLAVE STATUS`).
 */
import type { Connection } from 'mysql2/promise';
import type { SessionRole } from '../../src/adapter';

/**
 * `Adapter.sessionRole` for MySQL / MariaDB: a replica is `@@read_only` (its sessions refuse
 * writes); its lag is `Seconds_Behind_Master` from `SHOW SLAVE STATUS`, `null` while replication is
 * stopped (or the status cannot be read).
 */
export async function mysqlSessionRole(conn: Connection): Promise<SessionRole> {
  const [rows] = await conn.query('SELECT @@read_only AS ro');
  const readOnly = Number((rows as { ro?: unknown }[])[0]?.ro) === 1;
  let status: Record<string, unknown> | undefined;
  try {
    const [statusRows] = await conn.query('SHOW SLAVE STATUS');
    status = (statusRows as Record<string, unknown>[])[0];
  } catch {
    status = undefined; // no REPLICATION CLIENT privilege: lag unknown on a replica
  }
  if (!readOnly && status === undefined) return { standby: false, readOnly: false, lagMs: 0 };
  const seconds = status?.Seconds_Behind_Master;
  const lagMs = seconds === null || seconds === undefined ? null : Number(seconds) * 1000;
  return { standby: readOnly, readOnly, lagMs: readOnly ? lagMs : 0 };
}
