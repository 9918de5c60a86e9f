import type { Org, Workspace } from '../../schema/index.js';
import type { Config } from '../config.js';
import type { Pins } from '../runtime/controller.js';

import { TENANT_RUNTIME } from './runtimes.js';

export { TENANT_RUNTIME };

/** What a rollout redeploys: the tenant platform image or a workspace runtime's image. */
export type ImageKind = 'tenant' | 'workspace';

/**
 * The container image an owner should run (DESIGN §11): a tenant runs the `tenant` pin when one
 * is set, else CANARY_TENANT_IMAGE for a canary org (when set), else TENANT_IMAGE; a workspace
 * runs its runtime's `runtime_image_pins` row, and without one no container (nothing to
 * redeploy). The one rule the boot script, the `Image` tag at launch, the redeploy controller
 * and the rollout planner all read.
 */
export function desiredImage(
  config: Pick<Config, 'TENANT_IMAGE' | 'CANARY_TENANT_IMAGE'>,
  pins: Pick<Pins, 'image'>,
  org: Pick<Org, 'isCanary'>,
  workspace: Pick<Workspace, 'runtime'> | undefined,
): string | undefined {
  if (workspace) return pins.image(workspace.runtime);
  const orgImage = org.isCanary ? (config.CANARY_TENANT_IMAGE ?? config.TENANT_IMAGE) : config.TENANT_IMAGE;
  return pins.image(TENANT_RUNTIME) ?? orgImage;
}
