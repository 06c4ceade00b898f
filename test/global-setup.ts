// Integration and end-to-end tests start the real programs from dist/, so build them once first.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  try {
    execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.json'], {
      cwd: root,
      stdio: 'inherit',
    });
  } catch (err) {
    // While several people work in one tree, another part's type errors need not stop your tests.
    if (process.env.MESHWARD_ALLOW_TYPE_ERRORS !== '1') throw err;
  }
  // The admin console's bundle (dist/console), which coord serves at /admin.
  execFileSync(process.execPath, [`${root}dist/scripts/build-console.js`], { cwd: root, stdio: 'inherit' });
}
