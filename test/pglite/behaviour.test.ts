/**
 * The shared behaviour suite (test/shared/behaviour.ts) on PGlite (PostgreSQL in WASM, in process).
 * PGlite is ONE session: the adapter caps the pool at one connection, there is no other session to
 * read from or to kill, so the suite leaves out the tests that need concurrent sessions, a kill or
 * credentials (by capability). The "admin" is the PGlite instance itself, read only between scopes.
 * Tables are prefixed `beh_pglite_`.
 */
import { PGlite } from '@electric-sql/pglite';
import { PgliteConnection, pgliteAdapter } from '../../adapters/pglite';
import { describeBehaviour, type Row } from '../shared/behaviour';

let db: PGlite | undefined;
const instance = (): PGlite => {
  if (db === undefined) throw new Error('PGlite not started');
  return db;
};

describeBehaviour<PgliteConnection>({
  name: 'pglite',
  prefix: 'beh_pglite',
  capabilities: { sessionPerConnection: false, concurrentSessions: false, kill: false, cancel: false, credentials: false, abortsOnError: true },
  async setup() {
    db = await PGlite.create();
  },
  async teardown() {
    await db?.close();
  },
  // A user-passed instance: closing a pool never closes it.
  adapter: () => pgliteAdapter(instance()),
  async openAdmin() {
    const shared = instance();
    return {
      query: async (sql, params) => (await shared.query<Row>(sql, params)).rows,
      close: async () => {
        // A failed test must not leave the one session inside a transaction.
        if (!shared.closed && shared.isInTransaction()) await shared.exec('ROLLBACK');
      },
    };
  },
  query: async (conn, sql, params) => (await conn.query<Row>(sql, params)).rows,
  ph: (n) => `$${n}`,
  beginSql: 'BEGIN',
  async serverId(conn) {
    const { rows } = await conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return Number(rows[0]?.pid);
  },
  async txStatus(conn) {
    return conn.pglite.isInTransaction() ? 'in_tx' : 'idle';
  },
});
