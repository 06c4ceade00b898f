// The poll lifecycle shared by the TUN device and the UDP socket (native/src/poller.c): a handle that JS
// lets go of must not be freed while libuv still holds its watcher or while its callback runs. Run in a
// child with --expose-gc and glibc's MALLOC_PERTURB_ (freed memory is overwritten), so that a use after
// free crashes instead of passing by luck. The UDP socket needs no privileges; TUN shares the same code.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nativeAvailable } from './index.js';

describe.skipIf(!nativeAvailable())('poller: memory of a closed handle', () => {
  it('survives handles collected right after close() and closed from inside their own callback', () => {
    const index = fileURLToPath(new URL('../dist/native/index.js', import.meta.url));
    const script = `
      const { UdpSocket, parseAddrInto } = await import(${JSON.stringify(index)});
      const tx = UdpSocket.bind(0, '127.0.0.1');
      const buf = Buffer.alloc(64, 7), offs = Uint32Array.of(0), lens = Uint32Array.of(64);
      const addrs = new Uint8Array(16), ports = new Uint16Array(1), fams = new Uint8Array(1);
      fams[0] = parseAddrInto(addrs, 0, '127.0.0.1');
      const turn = () => new Promise((r) => setImmediate(r));
      let inCallback = 0;
      for (let i = 0; i < 100; i++) {
        // Collected while libuv is still closing its watcher (finalizers run before close callbacks).
        let a = UdpSocket.bind(0, '127.0.0.1');
        a.start(() => {});
        a.close();
        a = null;
        globalThis.gc();
        // Closed and let go from inside its own batch callback.
        let b = UdpSocket.bind(0, '127.0.0.1');
        ports[0] = b.localPort;
        await new Promise((resolve) => {
          b.start(() => {
            b.close();
            b = null;
            globalThis.gc();
            inCallback++;
            resolve();
          });
          tx.sendBatch(buf, offs, lens, addrs, ports, fams, 1);
        });
        await turn();
        globalThis.gc();
      }
      tx.close();
      console.log(JSON.stringify({ inCallback }));
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, MALLOC_PERTURB_: '165' },
      timeout: 60_000,
    });
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(JSON.parse(r.stdout.trim())).toEqual({ inCallback: 100 });
  });
});
