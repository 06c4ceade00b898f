import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StateDir } from './state.js';

describe('agent state directory', () => {
  const base = mkdtempSync(join(tmpdir(), 'mw-state-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('keeps secrets private: directory 0700, files 0600, no temporary files left', () => {
    const state = new StateDir(join(base, 'a'));
    state.write('keys.json', { nodeKey: 'secret' });
    expect(statSync(state.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(state.dir, 'keys.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(state.dir)).toEqual(['keys.json']);
    expect(state.read('keys.json')).toEqual({ nodeKey: 'secret' });
  });

  it('reads a missing file as undefined and names a corrupt one', () => {
    const state = new StateDir(join(base, 'b'));
    expect(state.read('nope.json')).toBeUndefined();
    writeFileSync(join(state.dir, 'bad.json'), '{"half');
    expect(() => state.read('bad.json')).toThrow(/bad\.json is not valid JSON/);
    state.remove('bad.json');
    expect(state.read('bad.json')).toBeUndefined();
  });
});
