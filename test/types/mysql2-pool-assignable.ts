import type * as mysql from 'mysql2/promise';
import { createPool } from '../../adapters/mysql2';

export const p: mysql.Pool = createPool({ uri: 'mysql://root@127.0.0.1/test' });
