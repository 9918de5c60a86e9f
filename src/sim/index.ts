/**
 * The cloud simulator (DESIGN §7): one HTTP server that the real AWS SDK v3 clients and the
 * real `cloudflare` SDK talk to. AWS lives at `/` (EC2 and STS over the Query protocol, told
 * apart by `Action=` and the SigV4 signing service; Secrets Manager, the Tagging API and SSM
 * by `x-amz-target`), Cloudflare v4 at `/client/v4`, admin endpoints at `/_sim/`.
 * `shared/reference/wire-protocols.md` is the specification; limits.ts holds every bucket and
 * simulated duration.
 *
 * Admin: `GET /_sim/state` (dump), `/_sim/calls`, `/_sim/log?since=MS`, `GET|PUT /_sim/faults`,
 * `POST /_sim/reset`, `POST /_sim/advance {"ms"}`, `GET /_sim/network?account=&region=` (an
 * account's default network), `GET /_sim/instance-credentials/:instanceId` (what the
 * instance's metadata service hands out; 404 unknown or no profile, 409 not running).
 *
 * Fidelity knobs (issue 21), all off in the `fast` and `realistic` profiles; `STRICT_FIDELITY`
 * turns them all on (`PUT /_sim/faults` with it, or `faults: STRICT_FIDELITY` in SimOptions),
 * `NO_FIDELITY` off: writeConsistencyMs, secretNameReuseMs, refuseForceDeleteOfScheduled,
 * listSecretsLagMs, cloudflareRateLimit, tunnelConnectionLingerMs, groupReleaseMs, shortPages,
 * taggingTokenExpiry, defaultGroupOnLaunch, tunnelStatusDetail (faults.ts says what each does).
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
 * - The seeded VPC is not a default VPC: GroupName addressing answers 400 `VPCIdNotSpecified`.
 *   Without VpcId/SubnetId the seeded VPC/subnet is used. It has a `default` group (as every
 *   VPC); RunInstances without groups attaches none unless `defaultGroupOnLaunch` is on.
 *   A root `/dev/xvda` 8 GiB gp3 volume is added when no mapping names it.
 * - Authorize without any source → `InvalidParameterValue`; revoking in our (non-default) VPC
 *   fails atomically with `InvalidPermission.NotFound`. Describe groups rules by
 *   (protocol, from, to) in first-seen order.
 * - `eventualConsistencyMs` hides new instances/groups from Describe* (ids → NotFound, filters →
 *   absent). `writeConsistencyMs` makes the calls that change them (Terminate/Stop/Start/
 *   Modify, Create/DeleteTags, Authorize/Revoke, DeleteSecurityGroup, RunInstances naming a
 *   group) answer NotFound for that long after creation, and after TerminateInstances, without
 *   acting; the two windows are independent.
 * - `groupReleaseMs`: a terminated instance keeps its groups in use (DependencyViolation).
 * - `shortPages`: a paginated page (MaxResults given) holds a random 0..MaxResults items and
 *   still carries a token; a last page carries a token to an empty page half of the time.
 * - MetadataOptions: HttpTokens optional|required, HttpEndpoint enabled|disabled, hop limit
 *   1–64 (else InvalidParameterValue); defaults optional/enabled/1, as described.
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
 *   unknown secret succeeds; a force-deleted name is reusable at once unless
 *   `secretNameReuseMs` blocks it (CreateSecret → InvalidRequestException "already scheduled
 *   for deletion"). Force delete of a scheduled secret is allowed (reference B) unless
 *   `refuseForceDeleteOfScheduled` (reported of AWS: restore first) refuses it with
 *   InvalidRequestException "currently marked deleted". `listSecretsLagMs`: ListSecrets shows
 *   which secrets existed and were scheduled as of that long ago (values and tags are current);
 *   with `shortPages` its pages are short too. PutSecretValue with a known token and another
 *   value → `ResourceExistsException`. Unlabelled versions beyond 100 are dropped.
 * - Resource policies: Put/Get/DeleteResourcePolicy; BlockPublicPolicy defaults to false and
 *   refuses (PublicPolicyException) an Allow for Principal `*` without a Condition. Only
 *   Principal `*`/`{"AWS": …}`, Effect, Action, Resource, the Arn and String condition
 *   operators (each also `…IfExists`) and `Null` are understood; anything else (NotPrincipal,
 *   Bool, …) →
 *   MalformedPolicyDocumentException. Condition keys: `ec2:SourceInstanceARN`,
 *   `aws:PrincipalArn` (the role ARN), `aws:PrincipalAccount`, `aws:userid`.
 * - Only instance credentials are checked against a secret's policy (the instance role has no
 *   Secrets Manager permission of its own): no Allow, an explicit Deny, a call naming no
 *   secret (Create/List) or a secret that does not exist → 400 `AccessDeniedException`. A
 *   principal matches by role ARN, session ARN, account id or `arn:aws:iam::<acct>:root`.
 *   Every other caller (static keys, AssumeRole sessions) is its account's administrator.
 *
 * Tagging API
 * - Ghosts are listed for 1 h after a resource left its own API: a group after delete, a
 *   secret after purge or forced delete, an instance after it left DescribeInstances (2 h
 *   after termination). Secrets pending deletion are still live resources.
 * - Default ResourcesPerPage 100; a bad token → InvalidParameterException. Tokens never expire
 *   unless `taggingTokenExpiry` (then PaginationTokenExpiredException, 400, 15 min after the
 *   page that issued it); `shortPages` applies as for EC2.
 *   Types: ec2:instance, ec2:volume, ec2:security-group, secretsmanager:secret (seeded VPC and
 *   subnet are not listed), in that order, each by creation.
 *
 * Cloudflare
 * - Unknown tunnel id → 404 code 1002 "Tunnel not found" (also token/configurations of a
 *   deleted tunnel; GET returns deleted tunnels). Deleting a deleted tunnel returns it (200).
 *   Deleted names are reusable. Missing/invalid name or short tunnel_secret → 400 code 1001.
 * - "Active connections" = running EC2 instances tagged `TunnelID=<id>` in any account and
 *   region, plus (`tunnelConnectionLingerMs`) connectors that stopped running less than that
 *   ago and were not cleaned up by `DELETE …/cfd_tunnel/:id/connections[?client_id=]` (a
 *   running connector reconnects, so cleanup keeps it) or `DELETE …/:id?cascade=true` (which
 *   deletes even with running connectors). Status `healthy` with connections, else
 *   `inactive`; with `tunnelStatusDetail`, `degraded` while only lingering connections
 *   remain and `down` once connectors that ran are gone.
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
 *   buckets are on. Injected 5xx → 500 code 10001. `cloudflareRateLimit` replaces the bucket
 *   with the real rule: 1200 calls per token in a fixed 5-minute window that starts with its
 *   first call; once over, every call is 429 code 971 until the window ends, with only
 *   `retry-after` (no `retry-after-ms`).
 *
 * Accounts, regions, STS (DESIGN §10)
 * - AWS objects live per (account, region): the account of the credentials (keys the
 *   simulator did not issue: the default account 123456789012), the region of the SigV4
 *   scope (none: us-east-1). A new one starts with a default VPC (172.31.0.0/16), a subnet per
 *   zone and the VPC's `default` group; the default account's us-east-1 holds the seeded
 *   network instead. Cloudflare is one account.
 * - STS AssumeRole (DurationSeconds 900–43200, default 3600) issues ASIA… keys of the role
 *   ARN's account, valid on the simulated clock. Trust: `roleTrust` lists who may assume a
 *   role (principal ARNs, session role ARNs, account ids); unlisted roles trust the default
 *   account's own credentials only; `deniedRoles` refuses a role to all (403 AccessDenied).
 * - Expired credentials: STS 403 `ExpiredToken` (Query XML), EC2 400 `ExpiredToken`, JSON
 *   services 403 `ExpiredTokenException`. A session token the simulator never issued: STS
 *   403 `InvalidClientTokenId`, EC2 401 `AuthFailure`, JSON 403 `UnrecognizedClientException`.
 *   (AWS's JSON services use 400 for both; test/e2e/canary.test.ts still asserts 403.)
 * - Instance credentials: the profile `arn:aws:iam::<a>:instance-profile/<path><name>` maps to
 *   the role `arn:aws:iam::<a>:role/<path><name>`; the session is
 *   `arn:aws:sts::<a>:assumed-role/<name>/<instanceId>`, valid 6 h, and still valid after the
 *   instance is gone (as on AWS), but its ec2:SourceInstanceARN is that instance's. Such a
 *   caller gets nothing outside Secrets Manager and STS (EC2 → 403 `UnauthorizedOperation`,
 *   tagging and SSM → `AccessDeniedException`): the instance roles hold no permission of their own.
 *
 * SSM Run Command
 * - AWS-RunShellScript only (else InvalidDocument), by InstanceIds (1–50; Targets →
 *   InvalidParameters); parameters commands (required), workingDirectory, executionTimeout.
 *   Only a `running` instance of the caller's account and region takes a command (else
 *   InvalidInstanceId "Instances not in a valid state for account").
 * - GetCommandInvocation answers InvocationDoesNotExist for DURATIONS.ssmInvocationVisible
 *   after sending, then Pending (ssmDelivery), InProgress (ssmRun), then Success (ResponseCode
 *   0) or Failed (ResponseCode 1, stderr) for instances listed in `ssmFailedInstances` when the
 *   command was sent. What happens to the instance afterwards does not change the outcome.
 * - ListCommands / ListCommandInvocations: newest first, MaxResults 1–50 (default 50),
 *   filters InvokedAfter/InvokedBefore/Status/DocumentName (+ ExecutionStage for
 *   ListCommands; unknown key → InvalidFilterKey); an unknown well-formed CommandId lists
 *   nothing, a malformed one → InvalidCommandId. History is kept 30 days.
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
  CLOUDFLARE_WINDOW,
  DURATIONS,
  EC2_BUCKETS,
  SECRETS_MANAGER_BUCKETS,
  SSM_BUCKETS,
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
