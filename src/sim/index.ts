/**
 * The cloud simulator (DESIGN §7): one HTTP server that the real AWS SDK v3 clients and the
 * real `cloudflare` SDK talk to. AWS lives at `/` (EC2 Query told apart by `Action=`,
 * Secrets Manager and the Tagging API by `x-amz-target`), Cloudflare v4 at `/client/v4`,
 * admin endpoints at `/_sim/`. `shared/reference/wire-protocols.md` is the specification;
 * limits.ts holds every bucket and simulated duration.
 *
 * Fault keys (`FaultSettings.operations`) are `<service>:<operation>` as in the call log:
 * `ec2:RunInstances`, `secretsmanager:CreateSecret`, `tagging:GetResources`,
 * `cloudflare:POST cfd_tunnel`, `cloudflare:GET dns_records/:id`, ...; `<service>:*` covers a
 * whole service; setting a key to null removes it.
 *
 * Choices where the reference is UNVERIFIED or silent:
 *
 * EC2
 * - Bad or foreign NextToken → 400 `InvalidPaginationToken`. Tokens are bound to the other
 *   request parameters (MaxResults may change between pages).
 * - MaxResults > 1000 → `InvalidParameterValue` (not clamped). MaxResults with tag filters is
 *   allowed. DescribeSecurityGroups rejects GroupIds + MaxResults like DescribeInstances.
 * - Unknown filter → `InvalidParameterValue` "The filter '<name>' is invalid". `?` matches zero
 *   or one character, as the reference says. More than 200 values across a call's filters, or
 *   a value over 255 characters → 400 `FilterLimitExceeded` (EC2's documented limits).
 * - `IncorrectInstanceState` wording: "The instance '<id>' is not in a state from which it can
 *   be stopped|started." / "The instance '<id>' is not in the 'stopped' state." (Modify).
 *   Stop on pending fails; Stop on stopping/stopped and Start on pending/running succeed and
 *   report the unchanged state. Terminating a stopped instance passes through shutting-down.
 * - Client tokens live 24 simulated hours; the fingerprint covers every parameter except
 *   ClientToken/DryRun. DryRun always answers 412 (no permission model).
 * - Terminated instances lose private IP/DNS, groups and block devices (so they never match
 *   `instance.group-id`), keep VPC, subnet and tags.
 * - There is no default VPC: GroupName addressing answers 400 `VPCIdNotSpecified`. Without
 *   VpcId/SubnetId the seeded VPC/subnet is used; RunInstances without groups attaches none.
 *   A root `/dev/xvda` 8 GiB gp3 volume is added when no mapping names it.
 * - Authorize without any source → `InvalidParameterValue`; revoking in our (non-default) VPC
 *   fails atomically with `InvalidPermission.NotFound`. Describe groups rules by
 *   (protocol, from, to) in first-seen order.
 * - Eventual consistency hides new instances/groups from Describe* only (ids → NotFound,
 *   filters → absent); mutating calls see them at once.
 * - Injected 5xx alternate between 500 `InternalError` and 503 `Unavailable`. SigV4 is not
 *   checked and a missing Authorization header is accepted.
 *
 * Secrets Manager
 * - Errors are `{"__type", "Message"}`. `DeletedDate` is when DeleteSecret was called,
 *   `DeletionDate` when the secret is purged (exactly then, in simulated time).
 * - ListSecrets: default SortOrder `desc` (newest first), SortBy ignored, MaxResults 1–100
 *   (default 100, else ValidationException); filters ANDed, values ORed, `!` per value,
 *   tag-key and tag-value evaluated independently.
 * - Get/Put/Update/Tag/Untag on a scheduled secret → `InvalidRequestException` (marked for
 *   deletion); Describe works. Restore of a live secret is a no-op. A forced delete of an
 *   unknown secret succeeds; a force-deleted name is reusable at once. PutSecretValue with a
 *   known token and another value → `ResourceExistsException`. Unlabelled versions beyond
 *   100 are dropped.
 *
 * Tagging API
 * - Ghosts are listed for 1 h after a resource left its own API: a group after delete, a
 *   secret after purge or forced delete, an instance after it left DescribeInstances (2 h
 *   after termination). Secrets pending deletion are still live resources.
 * - Default ResourcesPerPage 100; tokens never expire; a bad token → InvalidParameterException.
 *   Types: ec2:instance, ec2:volume, ec2:security-group, secretsmanager:secret (seeded VPC and
 *   subnet are not listed), in that order, each by creation.
 *
 * Cloudflare
 * - Unknown tunnel id → 404 code 1002 "Tunnel not found" (also token/configurations of a
 *   deleted tunnel; GET returns deleted tunnels). Deleting a deleted tunnel returns it (200).
 *   Deleted names are reusable. Missing/invalid name or short tunnel_secret → 400 code 1001.
 * - "Active connections" = running EC2 instances tagged `TunnelID=<id>`; status is then
 *   `healthy`, else `inactive`.
 * - config_src defaults to `local`; PUT configurations on a local tunnel → 400 1056 "Tunnel is
 *   locally configured". A new tunnel has configuration version 0 and `config: null`.
 * - Default per_page: tunnels 20 (max 1000), DNS records 100 (max 50,000).
 * - Unknown account/zone id → 404 with 7003 + 7000; a malformed one → 400 with the same.
 *   No credentials → 400 9106; a malformed Authorization header → 400 6003/6111.
 * - DNS: 81057 identical record, 81053 CNAME next to anything or A/AAAA next to a CNAME,
 *   81054 other types next to a CNAME; field validation → 400 1004 with a 9xxx error_chain;
 *   81044 is HTTP 404; proxied records get ttl 1; legacy `name=`/`content=`/`comment=` are
 *   exact; `match=any` and `order`/`direction` are supported.
 * - 429 carries `retry-after` (whole seconds) and the non-standard `retry-after-ms`, which the
 *   SDK prefers, so retries stay short; `Ratelimit`/`Ratelimit-Policy` headers are sent while
 *   buckets are on. Injected 5xx → 500 code 10001.
 *
 * Faults and time
 * - Half of the injected 5xx on mutating calls happen after the change was applied
 *   (`errorAfterCommitRatio`). Latency is real time; everything else runs on simulated time.
 * - `reset()` keeps faults and call counts; `resetCalls()` clears counts and the log.
 */

export { runSimCommand, type SimCommandIo } from './command.js';
export { type FaultSettings, NO_FIDELITY, STRICT_FIDELITY } from './faults.js';
export type { BucketSpec } from './limits.js';
export {
  CLOUDFLARE_BUCKET,
  DURATIONS,
  EC2_BUCKETS,
  SECRETS_MANAGER_BUCKETS,
  TAGGING_BUCKETS,
} from './limits.js';
export { SEED, type SeedInfo } from './seed.js';
export {
  type CallCount,
  type CallRecord,
  type InstanceCredentials,
  type InstanceDump,
  type NetworkInfo,
  type SimOptions,
  type SimStateDump,
  type Simulator,
  startSimulator,
} from './server.js';
