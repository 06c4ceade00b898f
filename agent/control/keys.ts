// The device's machine key: an Ed25519 key pair that proves to coord which machine is speaking.
// Stored as PKCS#8 (base64) in a file only root can read.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface MachineKey {
  privateKey: KeyObject;
  /** base64 of the raw 32-byte public key: the device's identity at coord. */
  publicKey: string;
}

export function publicOf(privateKey: KeyObject): string {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32).toString('base64');
}

export function generateMachineKey(): MachineKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: publicOf(privateKey) };
}

export function machineKeyFromPkcs8(b64: string): MachineKey {
  const privateKey = createPrivateKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'pkcs8' });
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('machine key file does not hold an Ed25519 key');
  return { privateKey, publicKey: publicOf(privateKey) };
}

export function machineKeyToPkcs8(k: MachineKey): string {
  return k.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
}

/** Loads the machine key from `path`, creating it (mode 0600, written atomically) on first use. */
export function loadOrCreateMachineKey(path: string): MachineKey {
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8').trim();
    try {
      return machineKeyFromPkcs8((JSON.parse(text) as { machineKey: string }).machineKey);
    } catch (err) {
      throw new Error(`machine key file ${path} is unreadable: ${(err as Error).message}`);
    }
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const k = generateMachineKey();
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ machineKey: machineKeyToPkcs8(k) }) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return k;
}
