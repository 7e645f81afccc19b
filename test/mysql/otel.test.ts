/**
 * The OpenTelemetry suite (test/shared/otel.ts) on a real MariaDB through the mysql2 adapter, and
 * the mysql2 drop-in's callback pool (`pool.pool.query(sql, cb)`, `getConnection(cb)`) keeping the
 * caller's context.
 */
import type { Connection } from 'mysql2/promise';
import { createPool as createMysqlPool, mysqlAdapter } from '../../adapters/mysql2';
import { activeSpanId } from '../helpers/otel';
import { MYSQL_URL } from '../helpers/mysql-rows-table';
import { describeOtel } from '../shared/otel';

const url = new URL(MYSQL_URL);

describeOtel<Connection>({
  name: 'mysql2',
  adapter: () => mysqlAdapter(MYSQL_URL),
  query: (conn, sql) => conn.query(sql),
  retryableSql: "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'injected deadlock'",
  retryableType: 'ER_LOCK_DEADLOCK',
  sleepSql: (seconds) => `SELECT SLEEP(${seconds})`,
  server: { 'db.system.name': 'mysql', 'server.address': url.hostname, 'server.port': Number(url.port || 3306), 'db.namespace': url.pathname.slice(1) },
  async callbackSpanIds(h) {
    const pool = createMysqlPool({ uri: MYSQL_URL, connectionLimit: 1, leasepool: { name: 'otel_mysql_facade', openTelemetry: { tracerProvider: h.tracerProvider, metrics: false } } });
    try {
      const ids: (string | undefined)[] = [];
      const callbacks = pool.pool;
      await new Promise<void>((resolve, reject) => {
        callbacks.query('SELECT 1', (err: unknown) => {
          ids.push(activeSpanId());
          if (err) reject(err);
          else resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        callbacks.getConnection((err, conn) => {
          ids.push(activeSpanId());
          if (err) return reject(err);
          conn.query('SELECT 1', (queryErr: unknown) => {
            ids.push(activeSpanId());
            conn.release();
            if (queryErr) reject(queryErr);
            else resolve();
          });
        });
      });
      // The promise API too: await keeps the context, as it does for any promise.
      await pool.query('SELECT 1');
      ids.push(activeSpanId());
      return ids.map(String);
    } finally {
      await pool.end();
    }
  },
});
