// The most expensive policy coord accepts for its tests: MAX_TEST_DESTINATIONS destinations in all and
// just under MAX_TEST_CHECKS source × destination checks (9,998 single addresses, each its own device,
// plus a 212-member group tested against itself both ways). `over` adds one destination too many.
export function heaviestAcceptedPolicy(over = false): string {
  const addrs = Array.from({ length: 9_998 + (over ? 1 : 0) }, (_, i) => `100.64.${(i >> 8) & 255}.${i & 255}:22`);
  const members = Array.from({ length: 212 }, (_, i) => `user${i}@example.com`);
  return JSON.stringify({
    groups: { 'group:crowd': members },
    acls: [
      { action: 'accept', src: ['alice@example.com'], dst: ['100.64.0.0/16:22'] },
      { action: 'accept', src: ['group:crowd'], dst: ['group:crowd:22'] },
    ],
    tests: [
      { src: 'alice@example.com', accept: addrs },
      { src: 'group:crowd', accept: ['group:crowd:22'], deny: ['group:crowd:23'] },
    ],
  });
}

/** A policy with one test of 3,000 destinations: the shape that once froze coord for seconds. */
export function issuePolicy(): string {
  const addrs = Array.from({ length: 3_000 }, (_, i) => `100.64.${(i >> 8) & 255}.${i & 255}:22`);
  return JSON.stringify({
    acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }],
    tests: [{ src: 'alice@example.com', accept: addrs }],
  });
}
