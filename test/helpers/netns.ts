// Network namespaces that stand for separate machines: one per node, each joined to this host by
// a veth pair and addressed only in the link-local range 169.254.0.0/16 (never any other address
// beyond loopback). Node i gets the /30 169.254.S.4i: the host side .4i+1, the node side .4i+2,
// and a route to the whole 169.254.S.0/24 through its host side, so every node reaches the
// address of node 0's host side, where the test's Redis and orchestrator listen.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

export interface LinkLocalNode {
  /** The namespace's name (`ip netns exec NAME …`). */
  namespace: string;
  /** The node side's address, inside the namespace. */
  address: string;
  /** The host side's address of this node's veth pair. */
  hostAddress: string;
  /** The host side's link name. */
  hostLink: string;
}

export interface LinkLocalNodes {
  nodes: LinkLocalNode[];
  /** The host address every node reaches (node 0's host side): listen here. */
  serverAddress: string;
  /** Removes every namespace and veth made; safe to call twice, and after a partial setup. */
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

/** Creates `count` namespaces joined to this host; `subnet` picks the third octet (1..254). */
export function createLinkLocalNodes(count: number, subnet: number): LinkLocalNodes {
  if (count < 1 || count > 63) throw new Error(`count: 1..63 nodes, got ${count}`);
  if (!Number.isInteger(subnet) || subnet < 1 || subnet > 254)
    throw new Error(`subnet: 1..254, got ${subnet}`);
  const tag = `${process.pid % 100000}`;
  const made: { namespace: string; hostLink: string }[] = [];
  const remove = () => {
    for (const { namespace, hostLink } of made.splice(0)) {
      // Deleting the namespace destroys its end of the pair, which takes the host end with it.
      try {
        ip('netns', 'del', namespace);
      } catch {
        // already gone
      }
      try {
        ip('link', 'del', hostLink);
      } catch {
        // gone with the namespace (the usual case)
      }
    }
  };
  const nodes: LinkLocalNode[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const namespace = `lctx-${tag}-n${i}`;
      const hostLink = `lx${tag}n${i}h`;
      const nodeLink = `lx${tag}n${i}c`;
      const hostAddress = `169.254.${subnet}.${4 * i + 1}`;
      const address = `169.254.${subnet}.${4 * i + 2}`;
      ip('netns', 'add', namespace);
      made.push({ namespace, hostLink });
      ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', nodeLink);
      ip('link', 'set', nodeLink, 'netns', namespace);
      ip('addr', 'add', `${hostAddress}/30`, 'dev', hostLink);
      ip('link', 'set', hostLink, 'up');
      const inside = (...args: string[]) => ip('netns', 'exec', namespace, 'ip', ...args);
      inside('link', 'set', 'lo', 'up');
      inside('addr', 'add', `${address}/30`, 'dev', nodeLink);
      inside('link', 'set', nodeLink, 'up');
      if (i > 0) inside('route', 'add', `169.254.${subnet}.0/24`, 'via', hostAddress);
      nodes.push({ namespace, address, hostAddress, hostLink });
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { nodes, serverAddress: nodes[0]!.hostAddress, remove };
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
