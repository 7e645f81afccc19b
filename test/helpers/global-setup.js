// Once per jest run: make sure the external tools the dashboard and chaos suites drive are
// installed (the README's two commands must do everything on a fresh machine). The script is
// idempotent and returns at once when the tools are there; it installs Debian packages otherwise.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async function globalSetup() {
  try {
    execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'ensure-tools.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  } catch (err) {
    // The suites that need a tool fail with a message saying how to install it.
    process.stderr.write(`[leasepool tests] scripts/ensure-tools.sh failed: ${err instanceof Error ? err.message : String(err)}\n`);
  }
};
