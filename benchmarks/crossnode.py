"""The topology suite across two Ray nodes (``ray.cluster_utils.Cluster``), in a subprocess.

Run by the runner as ``python -m benchmarks.crossnode --json PATH ...``: a fake
two-node cluster on this machine (two raylets, two object stores) gives every ring hop
a real node-to-node path (gRPC and object transfer between raylets), which one node
never exercises. It runs in its own process because a driver can join only one Ray
cluster, and the main run already has a local one. Ring member i is placed on node
i % 2 and the hub on node 0: every mesh hop crosses nodes, and each hub relay crosses
once. The two nodes share this machine's 2 cores, so this shows the cost of the
node-to-node path, not of a network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import ray
from ray.cluster_utils import Cluster

from benchmarks import topology
from mesh import Mesh, MeshConfig

SCENARIO = "cross-node"


def _placement(i: int, *, hub: int) -> dict[str, Any]:
    node = 0 if i == hub else i % 2
    return {"resources": {f"bench_node_{node}": 0.001}}


async def _measure(plan: topology.Plan, count: int | None) -> topology.Outcome:
    mesh = Mesh.local()
    hub = max(n for n, _ in plan.points())
    try:
        return await topology.run(mesh, plan, count=count, scenario=SCENARIO,
                                  placement=lambda i: _placement(i, hub=hub))  # fmt: skip
    finally:
        await mesh.shutdown()


def main() -> None:
    """Start the two-node cluster, run the plan on it, write the rows as JSON, tear down."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crossnode")
    parser.add_argument("--json", required=True, metavar="PATH")
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    plan = topology.Plan(agents=tuple(args.agents), payloads=(topology.BASE_PAYLOAD,),
                         messages=topology.PLANS["quick"].messages)  # fmt: skip
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"bench_node_0": 1}},
    )
    try:
        cluster.add_node(num_cpus=1, resources={"bench_node_1": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=MeshConfig().namespace, log_to_driver=False)
        outcome = asyncio.run(_measure(plan, args.count))
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"rows": [row.__dict__ for row in outcome.rows]}, out)
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
