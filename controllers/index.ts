import { type CloudflarePorts, type CloudPorts, OTHER_KIND, type ResourceKind } from '../src/cloud/ports.js';
import { capabilities } from '../src/config.js';
import type { ControllerSpec } from '../src/runtime/controller.js';
import { ControllerRegistry } from '../src/runtime/registry.js';
import { createInstanceController, instanceDisabledBecause } from './instance.js';
import { createRedeployController } from './redeploy.js';
import { createSecretsController } from './secrets.js';
import { createSecurityGroupController, securityGroupDisabledBecause } from './securitygroup.js';
import { createTunnelController } from './tunnel.js';

/*
 * The controller registry (DESIGN §10, STYLE 11): each controller once, with what it keeps,
 * what it waits for and how it is built. Declaration order is dependency order. The manager,
 * `plan`, metrics, the orphan scan and the CLI derive everything from `registry`; adding a
 * controller is one entry here plus its own files.
 */

const cloudflare = (ports: CloudPorts): CloudflarePorts => {
  if (!ports.tunnels || !ports.dns) throw new Error('Cloudflare is not configured');
  return { tunnels: ports.tunnels, dns: ports.dns };
};

/** The org's Cloudflare tunnel, its configuration and the `<slug>.<APP_DOMAIN>` CNAME. */
export const tunnel: ControllerSpec = {
  name: 'tunnel',
  kinds: [
    {
      kind: 'cf_tunnel',
      statusKey: 'tunnelId',
      remove: (p, r) => cloudflare(p).tunnels.deleteTunnel(r.externalId),
    },
    {
      kind: 'cf_dns_record',
      statusKey: 'dnsRecordId',
      remove: (p, r) => cloudflare(p).dns.deleteRecord(r.externalId),
    },
  ],
  owners: ['org'],
  deepChecks: true,
  waitsFor: () => [],
  deleteAfter: () => [{ controller: secrets, scope: 'self', label: 'Secret' }],
  disabledBecause: (_target, ports, config) =>
    ports.tunnels && ports.dns
      ? undefined
      : `Cloudflare is not configured: set ${capabilities(config).cloudflare.join(', ')}`,
  create: (ports) => createTunnelController(cloudflare(ports)),
};

/** The org's Secrets Manager bootstrap bundle; it carries the tunnel token. */
export const secrets: ControllerSpec = {
  name: 'secrets',
  kinds: [
    {
      kind: 'secret',
      statusKey: 'secretArn',
      remove: (p, r, config) => p.secrets.deleteSecret(r.name ?? r.externalId, config.SECRET_RECOVERY_DAYS),
    },
  ],
  owners: ['org'],
  waitsFor: () => [{ controller: tunnel, scope: 'self', label: 'Tunnel' }],
  // Its resource policy names the org's tenant instance: written again when one is launched.
  follows: () => [{ controller: instance, scope: 'self', label: 'Instance' }],
  deleteAfter: () => [
    { controller: instance, scope: 'self', label: 'Instance' },
    { controller: instance, scope: 'workspaces', label: 'WorkspaceInstances' },
    { controller: securitygroup, scope: 'self', label: 'SecurityGroup' },
    { controller: securitygroup, scope: 'workspaces', label: 'WorkspaceSecurityGroups' },
  ],
  disabledBecause: () => undefined,
  create: (ports) => createSecretsController(ports),
};

/** The tenant's and each workspace's security group. */
export const securitygroup: ControllerSpec = {
  name: 'securitygroup',
  kinds: [
    {
      kind: 'security_group',
      statusKey: 'groupId',
      remove: (p, r) => p.ec2.deleteSecurityGroup(r.externalId),
    },
  ],
  owners: ['org', 'workspace'],
  waitsFor: () => [],
  deleteAfter: () => [{ controller: instance, scope: 'self', label: 'Instance' }],
  disabledBecause: (target) => securityGroupDisabledBecause(target),
  create: (ports) => createSecurityGroupController(ports),
};

/** The tenant's and each workspace's EC2 instance. */
export const instance: ControllerSpec = {
  name: 'instance',
  kinds: [
    {
      kind: 'ec2_instance',
      statusKey: 'instanceId',
      remove: (p, r) => p.ec2.terminateInstance(r.externalId),
    },
  ],
  owners: ['org', 'workspace'],
  waitsFor: () => [
    { controller: securitygroup, scope: 'self', label: 'SecurityGroup' },
    { controller: secrets, scope: 'org', label: 'Secret' },
  ],
  deleteAfter: () => [{ controller: instance, scope: 'workspaces', label: 'WorkspaceInstances' }],
  // The AMI and image an instance launches with come from the pins.
  readsPins: true,
  disabledBecause: (target) => instanceDisabledBecause(target),
  create: (ports) => createInstanceController(ports),
};

/**
 * The container image on each instance (DESIGN §11): SSM Run Command redeploys, in the order
 * the rollout planner gives. Keeps nothing of its own; its audit rows name the command.
 */
export const redeploy: ControllerSpec = {
  name: 'redeploy',
  kinds: [],
  auditKind: 'ssm_command',
  owners: ['org', 'workspace'],
  waitsFor: () => [{ controller: instance, scope: 'self', label: 'Instance' }],
  deleteAfter: () => [],
  // A workspace's desired image is its runtime's pin: a pin change starts its rollout at once.
  readsPins: true,
  disabledBecause: (target) => instanceDisabledBecause(target),
  create: (ports) => createRedeployController(ports),
};

export const registry = new ControllerRegistry([tunnel, secrets, securitygroup, instance, redeploy]);

/** Every kind the orphan scan counts: what the controllers keep, and `other` for anything else tagged ours. */
export const RESOURCE_KINDS: readonly ResourceKind[] = [...registry.kinds, OTHER_KIND];

/** Label values whose metric series exist from the start (observability/metrics.ts). */
export const METRIC_LABELS = { controllers: registry.names, kinds: RESOURCE_KINDS };
