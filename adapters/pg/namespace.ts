/**
 * The default export of `leasepool/adapters/pg`: every named export (pg's own values and types,
 * with `Pool` the drop-in), as one namespace, so that `import pg from 'leasepool/adapters/pg'`
 * works as `import pg from 'pg'` does.
 */
export * from './exports';
// Not enumerable on the module (pg loads it on first read), so not part of `export *` at run time.
export { native } from './exports';
