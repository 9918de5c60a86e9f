import { createInstanceController } from '../controllers/instance.js';
import { createSecretsController } from '../controllers/secrets.js';
import { createSecurityGroupController } from '../controllers/securitygroup.js';
import { createTunnelController } from '../controllers/tunnel.js';
import { type Config, capabilities } from './config.js';
import { createCloudPorts } from './cloud/index.js';
import type { CloudPorts } from './cloud/ports.js';
import type { Database } from './db/client.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import type { AnyController, ControllerName } from './runtime/controller.js';
import { type LeaderJob, Manager, type ManagerOptions } from './runtime/manager.js';

export interface ControllerSet {
  controllers: AnyController[];
  enabled: Set<ControllerName>;
  /** Why each disabled controller is off, for the startup log and `/readyz`. */
  disabled: Partial<Record<ControllerName, string>>;
}

/**
 * Every provisioning controller, wired to its ports. A controller whose configuration is
 * missing is still registered (deletion ordering depends on it) but does not run.
 */
export function buildControllers(config: Config, ports: CloudPorts): ControllerSet {
  const caps = capabilities(config);
  const controllers: AnyController[] = [
    createSecurityGroupController({ ec2: ports.ec2 }),
    createSecretsController({ secrets: ports.secrets, ...(ports.tunnels ? { tunnels: ports.tunnels } : {}) }),
    createInstanceController({ ec2: ports.ec2 }),
  ];
  const disabled: ControllerSet['disabled'] = {};
  if (ports.tunnels && ports.dns) controllers.push(createTunnelController({ tunnels: ports.tunnels, dns: ports.dns }));
  else disabled.tunnel = `Cloudflare is not configured: set ${caps.cloudflare.join(', ')}`;
  if (caps.instance.length > 0) {
    disabled.instance = `instances are not launched without ${caps.instance.join(' and ')} (the instance fetches its bootstrap bundle with its instance profile)`;
  }
  if (caps.securityGroup.length > 0) {
    disabled.securitygroup = 'neither EC2_VPC_ID nor EC2_SECURITY_GROUP is set';
  }
  const enabled = new Set(controllers.map((c) => c.name).filter((n) => !disabled[n]));
  return { controllers, enabled, disabled };
}

export interface OperatorOptions {
  config: Config;
  database: Database;
  metrics: Metrics;
  logger: Logger;
  ports?: CloudPorts;
  awsCredentials?: { accessKeyId: string; secretAccessKey: string };
  jobs?: (ports: CloudPorts) => LeaderJob[];
  manager?: Partial<Omit<ManagerOptions, 'config' | 'database' | 'ports' | 'metrics' | 'logger' | 'controllers'>>;
}

export interface Operator {
  manager: Manager;
  ports: CloudPorts;
  set: ControllerSet;
  stop(): Promise<void>;
}

/** Wires config → ports → controllers → manager (kubebuilder's cmd/main.go) and starts it. */
export async function startOperator(options: OperatorOptions): Promise<Operator> {
  const { config, database, metrics, logger } = options;
  const ports =
    options.ports ??
    createCloudPorts(config, { metrics, ...(options.awsCredentials ? { awsCredentials: options.awsCredentials } : {}) });
  const set = buildControllers(config, ports);
  for (const [controller, why] of Object.entries(set.disabled)) logger.warn({ controller, why }, 'controller disabled');
  const manager = new Manager({
    config,
    database,
    ports,
    metrics,
    logger,
    controllers: set.controllers,
    enabled: set.enabled,
    jobs: options.jobs?.(ports) ?? [],
    ...options.manager,
  });
  await manager.start();
  return { manager, ports, set, stop: () => manager.stop() };
}
