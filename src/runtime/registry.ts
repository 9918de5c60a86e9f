import type { ResourceKind } from '../cloud/ports.js';
import type { OwnerKind } from '../db/desired.js';
import type {
  ControllerName,
  ControllerSpec,
  DeletionDependency,
  Dependency,
  OwnedKind,
} from './controller.js';

/** A spec with its relations resolved (they are declared as functions: specs refer to each other). */
export interface RegisteredController extends ControllerSpec {
  readonly dependsOn: readonly Dependency[];
  readonly deletesAfter: readonly DeletionDependency[];
  readonly following: readonly Dependency[];
}

/**
 * The list of controllers (controllers/index.ts builds it). Declaration order is dependency
 * order: a controller comes after everything it waits for, so conditions read top to bottom
 * and the orphan scan deletes in the reverse order. The manager, `plan`, metrics, the orphan
 * scan and the CLI read everything from here and never name a controller.
 */
export class ControllerRegistry {
  readonly controllers: readonly RegisteredController[];
  /** Controller names in declaration order. */
  readonly names: readonly ControllerName[];
  /** Every kind a controller keeps, in declaration order. */
  readonly kinds: readonly ResourceKind[];
  private readonly byName = new Map<ControllerName, RegisteredController>();
  private readonly byKind = new Map<ResourceKind, { controller: RegisteredController; owned: OwnedKind }>();

  constructor(specs: readonly ControllerSpec[]) {
    const registered = specs.map(
      (s): RegisteredController => ({
        ...s,
        dependsOn: s.waitsFor(),
        deletesAfter: s.deleteAfter(),
        following: s.follows?.() ?? [],
      }),
    );
    const position = new Map(specs.map((s, i) => [s, i]));
    for (const c of registered) {
      if (this.byName.has(c.name)) throw new Error(`controller ${c.name} is registered twice`);
      this.byName.set(c.name, c);
      for (const owned of c.kinds) {
        if (this.byKind.has(owned.kind)) throw new Error(`kind ${owned.kind} is kept by two controllers`);
        this.byKind.set(owned.kind, { controller: c, owned });
      }
    }
    for (const [i, c] of registered.entries()) {
      for (const dep of c.deletesAfter)
        if (!position.has(dep.controller))
          throw new Error(`${c.name} deletes after an unregistered controller`);
      for (const dep of c.following)
        if (!position.has(dep.controller)) throw new Error(`${c.name} follows an unregistered controller`);
      for (const dep of c.dependsOn) {
        const at = position.get(dep.controller);
        if (at === undefined) throw new Error(`${c.name} waits for an unregistered controller`);
        if (at >= i)
          throw new Error(`${c.name} waits for ${dep.controller.name}, which is declared after it`);
      }
    }
    this.controllers = registered;
    this.names = registered.map((c) => c.name);
    this.kinds = registered.flatMap((c) => c.kinds.map((k) => k.kind));
  }

  get(name: ControllerName): RegisteredController | undefined {
    return this.byName.get(name);
  }

  /** The registered form of a spec (the object its relations point at). */
  of(spec: ControllerSpec): RegisteredController {
    const c = this.byName.get(spec.name);
    if (!c) throw new Error(`controller ${spec.name} is not registered`);
    return c;
  }

  /** Controllers that keep a resource for this kind of owner. */
  forOwner(kind: OwnerKind): RegisteredController[] {
    return this.controllers.filter((c) => c.owners.includes(kind));
  }

  /** The controller that keeps a kind, and where its status row records the id. */
  keeperOf(kind: ResourceKind): { controller: RegisteredController; owned: OwnedKind } | undefined {
    return this.byKind.get(kind);
  }

  /** Position of a controller in declaration (dependency) order; unknown names sort last. */
  rank(name: ControllerName): number {
    const i = this.names.indexOf(name);
    return i === -1 ? this.names.length : i;
  }

  /**
   * Kinds in the order the orphan scan deletes them: the reverse of declaration order, so what
   * holds a reference (an instance, a DNS record) goes before what it refers to.
   */
  deletionOrder(): ResourceKind[] {
    return [...this.kinds].reverse();
  }
}
