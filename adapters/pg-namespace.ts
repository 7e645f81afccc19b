/**
 * The default export of `leasepool/adapters/pg`: every named export of that module (pg's own
 * values and types, with `Pool` the drop-in), as one namespace, so that
 * `import pg from 'leasepool/adapters/pg'` works as `import pg from 'pg'` does. Not an entry point
 * of its own.
 */
export * from './pg';
// Not enumerable on the module (pg loads it on first read), so not part of `export *` at run time.
export { native } from './pg';
