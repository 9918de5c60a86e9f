import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const form = (body: string) =>
  fetch(h.sim.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  }).then(async (r) => ({ status: r.status, text: await r.text() }));

describe('scale', () => {
  it('holds 40,000 instances and pages through them 1,000 at a time in linear time', async () => {
    for (let b = 0; b < 40; b++) {
      const tagsQuery =
        'TagSpecification.1.ResourceType=instance' +
        '&TagSpecification.1.Tag.1.Key=ManagedBy&TagSpecification.1.Tag.1.Value=molecule-operator' +
        `&TagSpecification.1.Tag.2.Key=OrgID&TagSpecification.1.Tag.2.Value=org-${b}`;
      const out = await form(
        `Action=RunInstances&ImageId=ami-0ea3c35c5c3284d82&MinCount=1000&MaxCount=1000&${tagsQuery}`,
      );
      expect(out.status).toBe(200);
    }
    let token = '';
    let pages = 0;
    let seen = 0;
    const times: number[] = [];
    const started = Date.now();
    do {
      const t0 = performance.now();
      const out = await form(
        'Action=DescribeInstances&MaxResults=1000&Filter.1.Name=tag:ManagedBy&Filter.1.Value.1=molecule-operator' +
          (token ? `&NextToken=${token}` : ''),
      );
      times.push(performance.now() - t0);
      seen += out.text.split('<instanceId>').length - 1;
      token = /<nextToken>([^<]+)<\/nextToken>/.exec(out.text)?.[1] ?? '';
      pages++;
    } while (token);
    expect(pages).toBe(40);
    expect(seen).toBe(40_000);
    times.sort((a, b) => a - b);
    // Generous bounds for a shared 2-core machine; the server-side render is a few ms.
    expect(times[Math.floor(times.length / 2)]).toBeLessThan(150);
    expect(Date.now() - started).toBeLessThan(10_000);
    // A narrow filter over the whole fleet still answers quickly.
    const t0 = Date.now();
    const one = await h.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:OrgID', Values: ['org-39'] }], MaxResults: 5 }),
    );
    expect(one.Reservations!.flatMap((r) => r.Instances!)).toHaveLength(5);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
