/** The swap plan and job requests (src/api/contract.ts) as the service validates them, from the operator or the mounted file. */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SWAP_JOB_KINDS, type SwapPlan } from '../../api/contract.ts';
import { GENERATION } from '../task-index.ts';

const storeRefSchema = z.strictObject({ component: z.string().min(1), generation: z.string().regex(GENERATION) });

export const swapPlanSchema = z.strictObject({
  revision: z.number().int().min(0),
  truth: storeRefSchema,
  mirror: storeRefSchema.nullable(),
  fenced: z.boolean(),
  fenceTimeoutMs: z.number().int().min(100).max(120_000),
}) satisfies z.ZodType<SwapPlan>;

export const swapProbeSchema = z.strictObject({ component: z.string().min(1) });

export const swapJobSchema = z.strictObject({
  id: z.string().min(1).max(100),
  kind: z.enum(SWAP_JOB_KINDS),
  revision: z.number().int().min(0),
});

/** The plan in the file at `path`; undefined when there is none yet; an error naming the field when it is not a plan. */
export function readPlanFile(path: string): SwapPlan | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (text.trim() === '') return undefined;
  const parsed = swapPlanSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new Error(`invalid swap plan in ${path}: ${problems}`);
  }
  return parsed.data;
}
