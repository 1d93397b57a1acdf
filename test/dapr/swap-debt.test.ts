/**
 * A task pod that dies while it owes the new store mirror writes: PostgreSQL
 * (the swap's target) is killed during verify, so both replicas acknowledge
 * writes they could not mirror and keep them as debt; then one replica is
 * killed and replaced. Its debt dies with it (deletes among it would bring
 * tasks back on the new store), so the driver must see that a process that
 * mirrored is gone and copy again into a fresh generation. Real daprd, Redis,
 * and a PostgreSQL of the test's own.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SERVICE_ENV, type StoreRef } from '../../src/api/contract.ts';
import { names } from '../../src/controller/names.ts';
import { DEFAULT_SWAP_SETTINGS, startSwap, stepSwap, type SwapState } from '../../src/controller/swap.ts';
import { dedicatedPostgres, type DedicatedStore } from '../support/dedicated-store.ts';
import { jsonClient } from '../support/http.ts';
import { emptyModel, lostOrWrong, runLoad, seed, swapPods } from '../support/swap-load.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const TOKEN = 'swap-debt-control-token-0123456789';
const SETTINGS = { ...DEFAULT_SWAP_SETTINGS, fenceTimeoutMs: 5_000, stepTimeoutMs: 20_000 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a task pod that dies owing the new store mirror writes', () => {
  let postgres: DedicatedStore;
  let stack: TaskServiceStack;

  beforeAll(async () => {
    postgres = await dedicatedPostgres(join(testbed.dir, 'swap-debt-pg'), testbed);
    stack = await startTaskServiceStack(testbed, {
      name: 'swap-debt',
      backend: 'redis',
      stores: postgres.stores,
      swap: { controlToken: TOKEN, replicas: 2 },
    });
  }, 180_000);

  afterAll(async () => {
    await stack.stop();
    await postgres.stop();
  });

  it('makes the copy start again into a fresh generation, and no acknowledged delete comes back', async () => {
    const urls = stack.replicas.map((replica) => replica.url);
    const [survivor, victim] = urls.map((url) => jsonClient(url));
    if (!survivor || !victim) throw new Error('two replicas expected');
    const pods = swapPods(() => urls, TOKEN);
    const model = emptyModel();
    const serving = [survivor, victim];
    await seed(serving, model, 1_000);
    const { promise: stopLoad, resolve: endLoad } = Promise.withResolvers<undefined>();
    const load = runLoad(serving, model, 6, stopLoad);

    const redis: StoreRef = { component: names.stateComponent(stack.taskApi, 'redis'), generation: '0' };
    const postgresql: StoreRef = { component: names.stateComponent(stack.taskApi, 'postgresql'), generation: 'g1' };
    let state: SwapState = startSwap(redis, postgresql, 0);
    while (state.phase !== 'Verify') state = await stepSwap(state, pods, SETTINGS);
    await postgres.kill();
    await sleep(4_000);
    // The victim leaves the client's rotation first (a request in flight to a killed process has no known outcome).
    serving.splice(serving.indexOf(victim), 1);
    await sleep(1_500);
    const owed = (await pods.report(urls[1] ?? '')).debt;
    const planFile = join(testbed.dir, 'swap-debt-plan.json');
    writeFileSync(planFile, JSON.stringify((await pods.report(urls[1] ?? '')).plan));
    await stack.restartReplica(1, { [SERVICE_ENV.swapPlanFile]: planFile });
    await postgres.restart();
    const blocked: string[] = [];
    for (let step = 0; step < 60 && state.phase !== 'Completed'; step++) {
      state = await stepSwap(state, pods, SETTINGS);
      if (state.blocked) blocked.push(state.blocked);
    }
    serving.push(victim);
    endLoad(undefined);
    await load;
    console.log(
      `victim owed ${owed} mirror writes when killed; swap ended in ${state.phase} into ${state.to.generation}; ` +
        `${model.requests} requests, ${model.failures.length} failed, ${model.deleted.size} deletes acknowledged`,
    );
    // The scenario really had debt die with a process, and the driver saw it.
    expect(owed).toBeGreaterThan(0);
    expect(blocked.some((reason) => reason.includes('went away while mirroring'))).toBe(true);
    expect(state.phase).toBe('Completed');
    expect(state.to.generation).not.toBe('g1');
    expect(model.failures).toEqual([]);
    expect(model.wrongReads).toEqual([]);
    for (const api of [survivor, victim]) expect((await lostOrWrong(api, model)).problems).toEqual([]);
  }, 300_000);
});
