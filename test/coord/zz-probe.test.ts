import { it } from 'vitest';
import { api, Coord } from './harness.js';

it('probe', async () => {
  const coord = new Coord();
  await coord.start(['--allow-private-webhooks']);
  try {
    const key = coord.createTailnet('example.com', 'alice@example.com');
    const o = api(coord.url, key);
    const show = (label: string, r: any) => console.log(`### ${label} ${r.status}\n${JSON.stringify(r.body)}`);
    show('set', await o.post('/tailnet/-/acl', `{"tagOwners":{"tag:web":["alice@example.com"]},"postures":{"posture:gold":["custom:tier == 'gold'"]},"grants":[{"src":["*"],"dst":["tag:web"],"ip":["tcp:22"],"srcPosture":["posture:gold"]}]}`));
    show('array tests pass', await o.post('/tailnet/-/acl/validate', [{ src: 'alice@example.com', srcPostureAttrs: { 'custom:tier': 'gold' }, accept: ['tag:web:22'] }]));
    show('array tests fail', await o.post('/tailnet/-/acl/validate', [{ src: 'alice@example.com', accept: ['tag:web:22'] }]));
    show('array tests fail2', await o.post('/tailnet/-/acl/validate', [{ src: 'alice@example.com', srcPostureAttrs: { 'custom:tier': 'silver' }, deny: ['tag:web:22'] }]));
    show('string body', await o.post('/tailnet/-/acl/validate', JSON.stringify(`{"acls":[]}`)));
    show('policy tests posture', await o.post('/tailnet/-/acl/validate', `{"tagOwners":{"tag:web":["alice@example.com"]},"postures":{"posture:gold":["custom:tier == 'gold'"]},"grants":[{"src":["*"],"dst":["tag:web"],"ip":["tcp:22"],"srcPosture":["posture:gold"]}],"tests":[{"src":"alice@example.com","srcPostureAttrs":{"custom:tier":"gold"},"accept":["tag:web:22"]}]}`));
  } finally {
    await coord.cleanup();
  }
}, 60000);
