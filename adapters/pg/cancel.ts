/**
 * PostgreSQL's out-of-band cancel: a CancelRequest (pid + secret key) on a new short-lived socket,
 * bounded in time, never rejecting.
 */
import * as net from 'node:net';

/** PostgreSQL's CancelRequest code (1234 << 16 | 5678). */
export const CANCEL_REQUEST_CODE = 80877102;

/**
 * Send a PostgreSQL CancelRequest (length 16, code 80877102, pid, secret key) on a new socket and
 * wait until the server closes it (it has then signalled the backend) or `timeoutMs` passes.
 * Never rejects.
 */
export function sendCancelRequest(host: string, port: number, pid: number, secret: number, timeoutMs: number): Promise<void> {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeInt32BE(secret, 12);
  return new Promise<void>((resolve) => {
    let socket: net.Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
      socket?.destroy();
      resolve();
    };
    try {
      socket = host.startsWith('/') ? net.connect({ path: `${host}/.s.PGSQL.${port}` }) : net.connect({ host, port });
    } catch {
      finish();
      return;
    }
    timer = setTimeout(finish, timeoutMs);
    socket.on('error', finish);
    socket.on('close', finish);
    // write, not end: PgBouncer drops a cancel request whose sender half-closes right after it
    // (it sees EOF before forwarding); PostgreSQL closes the socket itself once it has acted.
    socket.on('connect', () => socket?.write(packet));
  });
}
