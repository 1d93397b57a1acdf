/**
 * Starts a cluster with a real node (no Dapr) and waits to be killed: the
 * teardown test kills this process to show that a killed run leaves nothing
 * running behind. Prints `READY {json}` once the node is up.
 */
import { startRealCluster } from '../../testbed/harness/cluster.ts';

const cluster = await startRealCluster({ dapr: false });
console.log(
  `READY ${JSON.stringify({ pid: cluster.nodePid, dir: cluster.dir, hostInterface: cluster.network.hostInterface })}`,
);
setInterval(() => undefined, 1 << 30);
