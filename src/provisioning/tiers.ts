/**
 * Workspace sizing (seed: `workspaceTierResources`). Tiers 3 and 4 exist; anything else clamps
 * to 4 — a cheap mis-provision rather than a fall-through to a too-small default.
 */
const TIERS: Record<number, { instanceType: string; volumeGb: number }> = {
  3: { instanceType: 't3.medium', volumeGb: 40 },
  4: { instanceType: 't3.large', volumeGb: 80 },
};

/** hermes installs uv, a Python venv and a Node gateway: 18–25 GB during install. */
const RUNTIME_VOLUME_FLOOR_GB: Record<string, number> = { hermes: 50 };

export const TENANT_VOLUME_GB = 30;

export function effectiveTier(requested: number): 3 | 4 {
  return requested === 3 ? 3 : 4;
}

export function workspaceResources(
  tier: number,
  runtime: string,
): { tier: 3 | 4; instanceType: string; volumeGb: number } {
  const t = effectiveTier(tier);
  const base = TIERS[t]!;
  return {
    tier: t,
    instanceType: base.instanceType,
    volumeGb: Math.max(base.volumeGb, RUNTIME_VOLUME_FLOOR_GB[runtime] ?? 0),
  };
}
