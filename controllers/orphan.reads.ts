import type { CloudPorts, ResourceKind } from '../src/cloud/ports.js';
import type { CloudTargets, Target } from '../src/cloud/targets.js';
import type { OrphanLedger } from '../src/db/orphans.js';
import { dnsCommentMarker, tunnelNamePrefix } from '../src/provisioning/names.js';
import { ownershipTags } from '../src/provisioning/tags.js';
import { isNotFound } from '../src/runtime/errors.js';
import { RESOURCE_KINDS } from './index.js';
import {
  type CloudListing,
  type ConfirmResult,
  confirmLive,
  type LiveResource,
  type Orphan,
  recheckScope,
  STATUS_CONTROLLERS,
  stillOrphaned,
} from './orphan.diff.js';

/**
 * The orphan scan's reads (DESIGN §5): what is marked ours in one target, through that target's
 * ports, and an orphan's owners again before it is deleted, through the ledger. What they mean
 * is decided by the pure functions of orphan.diff.ts.
 */

export interface LiveListing extends ConfirmResult {
  /** Kinds whose gauges this scan sets: everything it could see, and `other`. */
  scannedKinds: ResourceKind[];
}

/**
 * Everything ours that is really there in one target's account, and — for the primary's scan —
 * in Cloudflare (one account for every target). Any failed listing fails the whole scan: a
 * partial listing is not "absent".
 */
export async function listLive(targets: CloudTargets, target: Target, env: string): Promise<LiveListing> {
  const [aws, cloudflare] = await Promise.all([
    listAws(target.aws, env),
    target.name === 'primary' ? listCloudflare(targets, env) : undefined,
  ]);
  const confirmed = confirmLive(aws, env);
  const all = {
    ...confirmed,
    resources: confirmed.resources.map((r): LiveResource => ({ ...r, target: target.name })),
  };
  if (cloudflare) {
    const cf = confirmLive(cloudflare, env);
    all.resources.push(...cf.resources);
    for (const k of cf.scanned) if (!all.scanned.includes(k)) all.scanned.push(k);
  }
  return { ...all, scannedKinds: RESOURCE_KINDS.filter((k) => all.scanned.includes(k)) };
}

const wrap = (what: string) => (cause: unknown) => {
  throw new Error(what, { cause });
};

const NOTHING: Pick<CloudListing, 'tagged' | 'instances' | 'securityGroups' | 'secrets'> = {
  tagged: [],
  instances: [],
  securityGroups: [],
  secrets: [],
};

/** Our Cloudflare objects; none when Cloudflare is not configured. */
async function listCloudflare(targets: CloudTargets, env: string): Promise<CloudListing> {
  const cf = targets.cloudflare;
  if (!cf) return { ...NOTHING, tunnels: undefined, dnsRecords: undefined };
  const [tunnels, dnsRecords] = await Promise.all([
    cf.tunnels.listTunnels({ namePrefix: tunnelNamePrefix(env) }).catch(wrap('list tunnels')),
    cf.dns.listRecords({ commentContains: dnsCommentMarker(env) }).catch(wrap('list dns records')),
  ]);
  return { ...NOTHING, tunnels, dnsRecords };
}

/** One target's AWS resources: the Tagging API, and the describes that confirm what it lists. */
async function listAws(aws: Target['aws'], env: string): Promise<CloudListing> {
  const tags = ownershipTags(env);
  const secretPrefix = `molecule/${env}/`;
  const [tagged, instances, securityGroups, secrets] = await Promise.all([
    aws.tagging.getResources(tags).catch(wrap('list tagged resources')),
    aws.ec2.describeInstances({ tags }).catch(wrap('describe instances')),
    aws.ec2.describeSecurityGroups({ tags }).catch(wrap('describe security groups')),
    aws.secrets.listSecrets(secretPrefix).catch(wrap('list secrets')),
  ]);
  // A secret tagged ours under another name is confirmed one by one (rare). One under the
  // prefix that listSecrets did not return is purged: a ghost, no call needed.
  const known = new Set(secrets.map((s) => s.arn));
  for (const r of tagged) {
    if (
      r.resourceType !== 'secretsmanager:secret' ||
      known.has(r.arn) ||
      r.resourceId.startsWith(secretPrefix)
    )
      continue;
    try {
      secrets.push(await aws.secrets.describeSecret(r.arn));
    } catch (e) {
      if (!isNotFound(e)) throw new Error('describe tagged secret', { cause: e });
    }
  }
  return { tagged, instances, securityGroups, secrets, tunnels: undefined, dnsRecords: undefined };
}

/** Classifies one orphan again against freshly read owner and status rows. */
export async function stillOrphan(
  ledger: OrphanLedger,
  o: Orphan,
  resources: LiveResource[],
): Promise<boolean> {
  const { sameKind, ownerIds } = recheckScope(o, resources);
  const [owners, statuses] = await Promise.all([
    ledger.owners(ownerIds),
    ledger.statusRefs(STATUS_CONTROLLERS, ownerIds),
  ]);
  return stillOrphaned(o, sameKind, owners, statuses);
}

/** The orphans, less secrets that DescribeSecret finds gone or scheduled for deletion. */
export async function confirmSecrets(ports: CloudPorts, orphans: Orphan[]): Promise<Orphan[]> {
  const out: Orphan[] = [];
  for (const o of orphans) {
    if (o.kind === 'secret') {
      const found = await ports.secrets.describeSecret(o.name ?? o.externalId).catch((e) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      if (!found || found.deletedDate || found.arn !== o.externalId) continue;
    }
    out.push(o);
  }
  return out;
}
