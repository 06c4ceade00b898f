// Integration and end-to-end tests start the real programs from dist/, so build them once first.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
