/**
 * The OpenTelemetry suite (test/shared/otel.ts) on a real PostgreSQL through the pg adapter, and
 * the pg drop-in's callbacks (`pool.query(sql, cb)`, `pool.connect(cb)`) keeping the caller's context.
 */
import type { Client } from 'pg';
import { pgAdapter, Pool as PgPool } from '../../adapters/pg';
import { activeSpanId } from '../helpers/otel';
import { describeOtel } from '../shared/otel';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const url = new URL(PG_URL);

describeOtel<Client>({
  name: 'pg',
  adapter: () => pgAdapter(PG_URL),
  query: (conn, sql) => conn.query(sql),
  retryableSql: "DO $$ BEGIN RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'serialization_failure'; END $$",
  retryableType: '40001',
  sleepSql: (seconds) => `SELECT pg_sleep(${seconds})`,
  server: { 'db.system.name': 'postgresql', 'server.address': url.hostname, 'server.port': Number(url.port || 5432), 'db.namespace': url.pathname.slice(1) },
  async callbackSpanIds(h) {
    const pool = new PgPool({ connectionString: PG_URL, max: 1, leasepool: { name: 'otel_pg_facade', openTelemetry: { tracerProvider: h.tracerProvider, metrics: false } } });
    try {
      const ids: (string | undefined)[] = [];
      await new Promise<void>((resolve, reject) => {
        pool.query('SELECT 1', (err) => {
          ids.push(activeSpanId());
          if (err) reject(err);
          else resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        pool.connect((err, client, release) => {
          ids.push(activeSpanId());
          if (err || client === undefined) return reject(err);
          client.query('SELECT 1', (queryErr) => {
            ids.push(activeSpanId());
            release();
            if (queryErr) reject(queryErr);
            else resolve();
          });
        });
      });
      return ids.map(String);
    } finally {
      await pool.end();
    }
  },
});
