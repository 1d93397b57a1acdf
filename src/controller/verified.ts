/**
 * What the last complete pass of each TaskApi left in place, so that an
 * unchanged TaskApi costs no rendering, no read and no write (the resync of a
 * thousand TaskApis writes nothing).
 *
 * A pass rendered its children from `rendering` (the TaskApi's uid, generation
 * and placement) and found or made each hold everything rendered, recording
 * the applied hash its live copy had then. While the rendering and every
 * applied hash stand and nothing else is owned, the next pass has nothing to
 * render, read, apply or prune; when anything moves, it renders and compares.
 * Pure: the live hashes come in through `appliedHashOf`.
 */
import type { StateBackend } from '../api/resource.ts';
import type { Placement } from './desired.ts';

export interface VerifiedChild {
  kind: string;
  name: string;
  /** Hash of the child's rendering (its RENDERED_HASH_ANNOTATION). */
  rendered: string;
  appliedHash: string;
}

export interface VerifiedPass {
  rendering: string;
  children: VerifiedChild[];
  /** Name of the task service's Deployment among them (absent while no backend can run). */
  taskDeployment: string | undefined;
  /** `<generation>/<target backend>` whose referenced Secrets and keys were all found. */
  passedPreflight: string | undefined;
}

/** What a pass renders from: the TaskApi's identity and generation, and where its pods run. */
export function renderingOf(uid: string, generation: number | undefined, placement: Placement | undefined): string {
  // A plan's revision names it: the swap driver gives every changed plan a new one.
  const where = placement
    ? `${placement.podBackend}@${placement.podGeneration}/${placement.stateBackends.join(',')}/plan ${placement.plan.revision}`
    : '-/-';
  return `${uid}/${generation ?? 0}/${where}`;
}

/** The preflight a generation and target passed, as VerifiedPass.passedPreflight records it. */
export const preflightKeyOf = (generation: number | undefined, target: StateBackend): string =>
  `${generation ?? 0}/${target}`;

export class VerifiedPasses {
  private readonly passes = new Map<string, VerifiedPass>();

  get(key: string): VerifiedPass | undefined {
    return this.passes.get(key);
  }

  set(key: string, pass: VerifiedPass): void {
    this.passes.set(key, pass);
  }

  delete(key: string): void {
    this.passes.delete(key);
  }

  /**
   * Whether the last pass of `key` still stands for `rendering`: it rendered the
   * same thing, the TaskApi owns exactly its children, and each still carries
   * the applied hash it had (`appliedHashOf` reads the cache).
   */
  stillInPlace(
    key: string,
    rendering: string,
    ownedCount: number,
    appliedHashOf: (kind: string, name: string) => string | undefined,
  ): VerifiedPass | undefined {
    const last = this.passes.get(key);
    if (last?.rendering !== rendering || ownedCount !== last.children.length) return undefined;
    return last.children.every((child) => appliedHashOf(child.kind, child.name) === child.appliedHash)
      ? last
      : undefined;
  }

  /** Whether the TaskApi's referenced Secrets were all found for this generation and target. */
  passedPreflight(key: string, generation: number | undefined, target: StateBackend): boolean {
    return this.passes.get(key)?.passedPreflight === preflightKeyOf(generation, target);
  }
}
