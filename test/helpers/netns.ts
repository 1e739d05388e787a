// Network namespaces that stand for separate machines: one per node, each joined by a veth pair to
// one bridge on this host, all addressed only in the link-local range 169.254.0.0/16 (never any
// other address beyond loopback). The bridge has 169.254.S.1/24 (the test's Redis and orchestrator
// listen there) and node i has 169.254.S.(10+i)/24: one link-local segment, so nodes reach each
// other directly (ranks of one gang on two nodes) without this host forwarding IP packets.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

export interface LinkLocalNode {
  /** The namespace's name (`ip netns exec NAME …`). */
  namespace: string;
  /** The node side's address, inside the namespace. */
  address: string;
  /** This host's address on the nodes' segment (the bridge's). */
  hostAddress: string;
  /** The host side's link name (a port of the bridge). */
  hostLink: string;
}

export interface LinkLocalNodes {
  nodes: LinkLocalNode[];
  /** The host address every node reaches (the bridge's): listen here. */
  serverAddress: string;
  /** The bridge's link name. */
  bridge: string;
  /** Removes every namespace, veth and the bridge made; safe to call twice, and after a partial setup. */
  remove(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here (not root, no `ip`, not permitted), or undefined. */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'ip netns needs root';
  const probe = `lctx-probe-${process.pid}`;
  try {
    ip('netns', 'add', probe);
  } catch (err) {
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    return `ip netns is not permitted here (${detail})`;
  }
  ip('netns', 'del', probe);
  return undefined;
}

/** Creates `count` namespaces on one bridge; `subnet` picks the third octet (1..254). */
export function createLinkLocalNodes(count: number, subnet: number): LinkLocalNodes {
  if (count < 1 || count > 63) throw new Error(`count: 1..63 nodes, got ${count}`);
  if (!Number.isInteger(subnet) || subnet < 1 || subnet > 254)
    throw new Error(`subnet: 1..254, got ${subnet}`);
  const tag = `${process.pid % 100000}`;
  const bridge = `lx${tag}br`;
  const hostAddress = `169.254.${subnet}.1`;
  const made: { namespace: string; hostLink: string }[] = [];
  let bridgeMade = false;
  const remove = () => {
    for (const { namespace, hostLink } of made.splice(0)) {
      // Deleting the host end destroys the pair at once (deleting the namespace would do it later).
      try {
        ip('link', 'del', hostLink);
      } catch {
        // already gone
      }
      try {
        ip('netns', 'del', namespace);
      } catch {
        // already gone
      }
    }
    if (bridgeMade) {
      try {
        ip('link', 'del', bridge);
      } catch {
        // already gone
      }
      bridgeMade = false;
    }
  };
  const nodes: LinkLocalNode[] = [];
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    bridgeMade = true;
    ip('addr', 'add', `${hostAddress}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    for (let i = 0; i < count; i++) {
      const namespace = `lctx-${tag}-n${i}`;
      const hostLink = `lx${tag}n${i}h`;
      const nodeLink = `lx${tag}n${i}c`;
      const address = `169.254.${subnet}.${10 + i}`;
      ip('netns', 'add', namespace);
      made.push({ namespace, hostLink });
      ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', nodeLink);
      ip('link', 'set', nodeLink, 'netns', namespace);
      ip('link', 'set', hostLink, 'master', bridge);
      ip('link', 'set', hostLink, 'up');
      const inside = (...args: string[]) => ip('netns', 'exec', namespace, 'ip', ...args);
      inside('link', 'set', 'lo', 'up');
      inside('addr', 'add', `${address}/24`, 'dev', nodeLink);
      inside('link', 'set', nodeLink, 'up');
      nodes.push({ namespace, address, hostAddress, hostLink });
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { nodes, serverAddress: hostAddress, bridge, remove };
}

/** Whether process `pid` runs in network namespace `namespace` (same nsfs inode). */
export function inNamespace(pid: number, namespace: string): boolean {
  return statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${namespace}`).ino;
}

/** Whether a link of this name exists in this (the host's) namespace. */
export function linkExists(name: string): boolean {
  try {
    ip('link', 'show', name);
    return true;
  } catch {
    return false;
  }
}
