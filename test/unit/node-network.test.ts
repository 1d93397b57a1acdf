import { describe, expect, it } from 'vitest';
import { nodeNetwork, overlaps } from '../../testbed/harness/node-namespace.ts';

describe('the real node network plan', () => {
  it.each([
    ['10.250.0.0/30', '10.250.0.0/30', true],
    ['10.250.0.0/30', '10.250.0.4/30', false],
    ['10.251.3.0/24', '10.251.3.77/32', true],
    ['10.0.0.0/8', '10.251.3.0/24', true],
    ['192.0.2.0/24', '10.251.0.0/24', false],
    ['10.255.255.53/32', '10.250.0.0/30', false],
    ['0.0.0.0/0', '10.250.0.0/30', true],
  ])('%s and %s overlap: %s', (a, b, expected) => {
    expect(overlaps(a, b)).toBe(expected);
    expect(overlaps(b, a)).toBe(expected);
  });

  it('gives each slot its own link and pod range, apart from the Service range', () => {
    const plans = [0, 1, 15].map(nodeNetwork);
    expect(plans[1]).toEqual({
      slot: 1,
      hostAddress: '10.250.1.1',
      nodeAddress: '10.250.1.2',
      podCidr: '10.251.1.0/24',
      hostInterface: 'taskapi-node1',
    });
    const ranges = plans.flatMap((plan) => [`${plan.hostAddress}/30`, plan.podCidr]);
    for (const [i, a] of ranges.entries()) {
      expect(overlaps(a, '10.96.0.0/16')).toBe(false);
      for (const b of ranges.slice(i + 1)) expect(overlaps(a, b)).toBe(false);
    }
    for (const plan of plans) expect(plan.hostInterface.length).toBeLessThanOrEqual(15);
  });
});
