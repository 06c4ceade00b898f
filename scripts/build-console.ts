// Bundles the admin console (console/src) into dist/console with esbuild: one JS and one CSS file named
// by a hash of their content (so browsers may cache them for good), and manifest.json naming them for
// coord/console/serve.ts. Run by `npm run build`; nothing is fetched at run time.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = join(root, 'dist/console');

async function bundle(entry: string): Promise<Buffer> {
  const r = await build({
    entryPoints: [join(root, 'console/src', entry)],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    write: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return Buffer.from(r.outputFiles[0]!.contents);
}

const hashed = (name: string, ext: string, body: Buffer) => `${name}-${createHash('sha256').update(body).digest('hex').slice(0, 12)}.${ext}`;

const js = await bundle('main.js');
const css = await bundle('style.css');
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) rmSync(join(out, f));
const manifest = { js: hashed('app', 'js', js), css: hashed('app', 'css', css) };
writeFileSync(join(out, manifest.js), js);
writeFileSync(join(out, manifest.css), css);
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
if (process.argv.includes('--size')) {
  const kb = (b: Buffer) => (b.length / 1024).toFixed(1);
  console.log(`console: ${manifest.js} ${kb(js)} KB (${kb(gzipSync(js))} KB gzipped), ${manifest.css} ${kb(css)} KB (${kb(gzipSync(css))} KB gzipped)`);
}
