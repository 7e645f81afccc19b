/**
 * A fake PostgreSQL server that speaks just enough of the protocol to ask for a cleartext
 * password, then fails authentication with SQLSTATE 28P01, echoing the password it got in the
 * error message (the worst case for redaction). The test server uses `trust` auth, so a real
 * password failure cannot be produced there.
 */
import * as net from 'node:net';

export interface PasswordServer {
  readonly port: number;
  /** Passwords received, in order. */
  readonly received: string[];
  close(): Promise<void>;
}

export async function pgPasswordServer(user = 'lp_pw_user'): Promise<PasswordServer> {
  const received: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let startupDone = false;
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!startupDone) {
        if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
        buf = buf.subarray(buf.readInt32BE(0));
        startupDone = true;
        const auth = Buffer.alloc(9);
        auth.write('R', 0);
        auth.writeInt32BE(8, 1);
        auth.writeInt32BE(3, 5); // AuthenticationCleartextPassword
        socket.write(auth);
      }
      if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return;
      const password = buf.subarray(5, 1 + buf.readInt32BE(1) - 1).toString('utf8');
      received.push(password);
      const fields = ['SFATAL', 'VFATAL', 'C28P01', `Mpassword authentication failed for user "${user}" (got ${password})`];
      const body = Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`)), Buffer.from([0])]);
      const head = Buffer.alloc(5);
      head.write('E', 0);
      head.writeInt32BE(4 + body.length, 1);
      socket.end(Buffer.concat([head, body]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
