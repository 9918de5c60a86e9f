import {
  GetResourcesCommand,
  type ResourceGroupsTaggingAPIClient,
} from '@aws-sdk/client-resource-groups-tagging-api';
import { errorCodeOf } from '../../runtime/errors.js';
import { type CallContext, call } from '../instrument.js';
import type { TaggedResource, TaggingPort, Tags } from '../ports.js';
import { fromTags } from './ec2.js';
import { translateAwsError } from './errors.js';

const TOKEN_EXPIRED = 'PaginationTokenExpiredException';
/** How often one listing starts over after an expired token before it gives up. */
export const TOKEN_EXPIRY_RESTARTS = 3;

export class TaggingAdapter implements TaggingPort {
  constructor(
    private readonly client: ResourceGroupsTaggingAPIClient,
    private readonly ctx: CallContext,
    private readonly pageSize = 100,
  ) {}

  /**
   * Every resource with these tags. Pages may be short or empty and still carry a token: only
   * an empty token ends the listing. A token is good for 15 minutes: when one expired
   * (PaginationTokenExpiredException, e.g. after long rate-limit waits) the listing starts
   * again from the first page — a retry of the same page cannot succeed — at most
   * {@link TOKEN_EXPIRY_RESTARTS} times, then the listing fails (a failed list, never "absent").
   */
  async getResources(tags: Tags): Promise<TaggedResource[]> {
    for (let restarts = 0; ; restarts++) {
      try {
        return await this.listOnce(tags);
      } catch (e) {
        if (errorCodeOf(e) !== TOKEN_EXPIRED || restarts >= TOKEN_EXPIRY_RESTARTS) throw e;
        this.ctx.metrics?.cloudListingRestarts.labels('tagging', 'GetResources', this.ctx.target).inc();
      }
    }
  }

  private async listOnce(tags: Tags): Promise<TaggedResource[]> {
    const out: TaggedResource[] = [];
    let token: string | undefined;
    do {
      const res = await call(
        this.ctx,
        'tagging',
        'GetResources',
        'tagging',
        () =>
          this.client.send(
            new GetResourcesCommand({
              TagFilters: Object.entries(tags).map(([Key, v]) => ({ Key, Values: [v] })),
              ResourcesPerPage: this.pageSize,
              PaginationToken: token,
            }),
          ),
        translateAwsError,
      );
      for (const m of res.ResourceTagMappingList ?? []) {
        if (m.ResourceARN)
          out.push({ arn: m.ResourceARN, ...parseArn(m.ResourceARN), tags: fromTags(m.Tags) });
      }
      token = res.PaginationToken || undefined;
    } while (token);
    return out;
  }
}

/** `arn:aws:ec2:us-east-1:123:instance/i-0ab` → ec2:instance, i-0ab; secrets: `…:secret:name-AbCdEf`. */
export function parseArn(arn: string): { resourceType: string; resourceId: string } {
  const parts = arn.split(':');
  const service = parts[2] ?? '';
  const rest = parts.slice(5).join(':');
  if (service === 'secretsmanager')
    return { resourceType: 'secretsmanager:secret', resourceId: rest.replace(/^secret:/, '') };
  const slash = rest.indexOf('/');
  if (slash >= 0)
    return { resourceType: `${service}:${rest.slice(0, slash)}`, resourceId: rest.slice(slash + 1) };
  return { resourceType: service, resourceId: rest };
}
