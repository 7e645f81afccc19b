/** An idle mysql2 pool nobody closed, and `allowExitOnIdle` (see test/shared/idle-exit.ts). Tables: none. */
import { idleExitTests } from '../shared/idle-exit';

idleExitTests('mysql');
