// A TCP proxy in front of a registry that drops every connection once, when the bytes sent
// towards the registry pass `cutAfter`: a network failure in the middle of an upload.
import net from 'node:net';

export interface CutProxy {
  /** `127.0.0.1:PORT`. */
  address: string;
  /** True once the cut happened. */
  cut(): boolean;
  stop(): Promise<void>;
}

export async function startCutProxy(target: string, cutAfter: number): Promise<CutProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  let sent = 0;
  let done = false;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    open.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d: Buffer) => {
      sent += d.length;
      if (!done && sent > cutAfter) {
        done = true;
        // Every connection goes at once, as when a link drops.
        for (const s of open) s.destroy();
        return;
      }
      upstream.write(d);
    });
    upstream.pipe(client);
    for (const s of [client, upstream]) {
      s.on('error', close);
      s.on('close', () => {
        open.delete(s);
        close();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut: () => done,
    async stop() {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
