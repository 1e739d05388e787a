// The atomic operations of the control plane, BullMQ style: each one is one Lua script that Redis
// runs without interleaving anything else, so two schedulers, an agent and a crash at any moment
// can never leave a device held twice or a job in two states. Each script says what it
// guarantees. Every script takes the key prefix as ARGV[1] and builds its keys from it (keys.ts
// names the same keys), so the control plane runs on one Redis server, not a Redis Cluster.
//
// The source of truth for devices is a node's device table (hash device index → job id): a device
// is free exactly when it has no entry. Only place-job adds entries and only end-attempt removes
// them, each guarded by the job's state and attempt.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Helpers shared by every script: key names and the one way a state change is announced. */
const PRELUDE = `
local rcall = redis.call
local prefix = ARGV[1]
local function jobKey(id) return prefix .. ':job:' .. id end
local function nodeKey(name, part)
  if part then return prefix .. ':node:' .. name .. ':' .. part end
  return prefix .. ':node:' .. name
end
local function field(key, name)
  local v = rcall('HGET', key, name)
  if v == false then return '' end
  return v
end
local function splitNumbers(csv)
  local out = {}
  for part in string.gmatch(csv, '[^,]+') do out[#out + 1] = part end
  return out
end
-- Where a job's attempt runs: {node, devices csv} per node in rank order, from the 'shares' field
-- ("node-a:0,1 node-b:0,1"); a record from before shares existed has one share on 'node'.
local function sharesOf(key)
  local out = {}
  local text = field(key, 'shares')
  if text == '' then
    local node = field(key, 'node')
    if node ~= '' then out[1] = { node = node, devices = field(key, 'deviceIndices') } end
    return out
  end
  for node, devices in string.gmatch(text, '([^ :]+):([^ ]*)') do
    out[#out + 1] = { node = node, devices = devices }
  end
  return out
end
-- Where the attempt runs, in words: its node, or its nodes joined by '+' when its gang spans
-- several (as job-record.ts's placementName says it).
local function placement(key)
  local shares = sharesOf(key)
  if #shares < 2 then return field(key, 'node') end
  local names = {}
  for i, share in ipairs(shares) do names[i] = share.node end
  return table.concat(names, '+')
end
-- A state change goes to the job's capped event stream (history for late watchers) and to the
-- events channel (live watchers), in the same step as the change itself.
local function emit(id, message, now)
  local key = jobKey(id)
  local event = cjson.encode({
    jobId = id,
    state = field(key, 'state'),
    attempt = tonumber(field(key, 'attempt')) or 0,
    node = placement(key),
    devices = field(key, 'deviceIndices'),
    message = message,
    timeMs = tonumber(now)
  })
  rcall('XADD', key .. ':events', 'MAXLEN', '~', '1000', '*', 'event', event)
  rcall('PUBLISH', prefix .. ':events:jobs', event)
end
local function hasShare(key, node)
  for _, share in ipairs(sharesOf(key)) do
    if share.node == node then return true end
  end
  return false
end
-- The agent that took a node's share of the current attempt ('' before it is claimed).
local function shareAgent(key, node)
  local agent = rcall('HGET', key, 'agent@' .. node)
  if agent then return agent end
  if field(key, 'shares') == '' and field(key, 'node') == node then return field(key, 'agent') end
  return ''
end
`;

export class Script {
  readonly sha: string;
  readonly lua: string;

  constructor(
    readonly name: string,
    body: string,
  ) {
    this.lua = `${PRELUDE}\n${body}`;
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  /** Runs the script by its hash, loading it on a server that has not seen it yet. */
  async run(redis: Redis, args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, 0, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
      return redis.eval(this.lua, 0, ...args);
    }
  }
}

/**
 * create-job — ARGV: prefix, id, now, field, value, field, value, …
 * Records a validated job as QUEUED and marks it waiting. Guarantees: an id is recorded once (an
 * existing id is an error, never overwritten), and a recorded job is always in the submission
 * index and the waiting index, so the scheduler finds it even if the caller dies right after.
 */
export const createJob = new Script(
  'create-job',
  `
local id, now = ARGV[2], ARGV[3]
local key = jobKey(id)
if rcall('EXISTS', key) == 1 then return redis.error_reply('job ' .. id .. ' already exists') end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
rcall('HSET', key, unpack(fields))
rcall('ZADD', prefix .. ':jobs', now, id)
rcall('SADD', prefix .. ':jobs:waiting', id)
emit(id, 'queued', now)
return 1
`,
);

/**
 * place-job — ARGV: prefix, id, expectedAttempt, token, now, node, count, node, count, …
 * Reserves the job's devices and records the placement, as one step: `count` devices on each named
 * node, ranks in the order given (one node when one can hold the gang; several when none can).
 * Guarantees: the gang is placed whole or not at all (every node's share of devices, or nothing
 * changes); a device is never given to two jobs (only devices without an entry in the device table
 * are taken); the counts add up to the job's devices; a job is placed once per attempt
 * (state QUEUED/RECOVERING and the attempt the caller saw are checked and advanced together);
 * nothing is placed on a node whose agent's lease has expired, before a recovering job's backoff
 * is over, or on a node kept for another starving job. Returns {1, attempt, shares} or {0, reason}.
 */
export const placeJob = new Script(
  'place-job',
  `
local id, expected, token, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = jobKey(id)
local state = field(key, 'state')
if state ~= 'QUEUED' and state ~= 'RECOVERING' then return {0, 'job is ' .. state} end
if field(key, 'attempt') ~= expected then return {0, 'attempt changed'} end
local retryAt = tonumber(field(key, 'retryAt'))
if retryAt and retryAt > now then return {0, 'backing off'} end
local need = tonumber(field(key, 'devices'))
local planned, total, seen = {}, 0, {}
for i = 6, #ARGV - 1, 2 do
  local node, count = ARGV[i], tonumber(ARGV[i + 1])
  if seen[node] then return {0, 'node ' .. node .. ' named twice'} end
  seen[node] = true
  if rcall('EXISTS', nodeKey(node, 'alive')) == 0 then return {0, 'node ' .. node .. ' is not alive'} end
  local hold = rcall('GET', nodeKey(node, 'hold'))
  if hold and hold ~= id then return {0, 'node ' .. node .. ' is kept for ' .. hold} end
  local size = tonumber(field(nodeKey(node), 'devices')) or 0
  local deviceTable = nodeKey(node, 'devices')
  local free = {}
  for d = 0, size - 1 do
    if #free == count then break end
    if rcall('HEXISTS', deviceTable, tostring(d)) == 0 then free[#free + 1] = tostring(d) end
  end
  if #free < count then return {0, 'only ' .. #free .. ' of ' .. count .. ' devices free on ' .. node} end
  planned[#planned + 1] = { node = node, devices = free, held = hold == id }
  total = total + count
end
if #planned == 0 or total ~= need then
  return {0, 'the shares hold ' .. total .. ' devices, the job needs ' .. need}
end
local parts, where = {}, {}
for _, share in ipairs(planned) do
  for _, d in ipairs(share.devices) do rcall('HSET', nodeKey(share.node, 'devices'), d, id) end
  if share.held then rcall('DEL', nodeKey(share.node, 'hold')) end
  local devices = table.concat(share.devices, ',')
  parts[#parts + 1] = share.node .. ':' .. devices
  where[#where + 1] = share.node .. ' devices ' .. devices
end
local attempt = tonumber(expected) + 1
local shares = table.concat(parts, ' ')
local message = 'placed on ' .. table.concat(where, ' and ')
rcall('HSET', key, 'state', 'PLACED', 'attempt', attempt, 'node', planned[1].node,
  'deviceIndices', table.concat(planned[1].devices, ','), 'shares', shares,
  'token', token, 'agent', '', 'pids', '', 'placedAt', now, 'updatedAt', now, 'message', message)
rcall('HDEL', key, 'retryAt', 'holdNode')
rcall('SREM', prefix .. ':jobs:waiting', id)
rcall('SADD', prefix .. ':jobs:active', id)
emit(id, message, now)
return {1, attempt, shares}
`,
);

/**
 * claim-job — ARGV: prefix, id, node, attempt, agentId, now
 * A node agent takes its node's share of a placed job before it launches ranks. Guarantees: a
 * share of an attempt is launched by one agent at most — only the agent holding the node's lease
 * may claim, only an attempt with a share on this node, and only once. Returns {1, 'ok'} or
 * {0, why}: 'cancelled' (a cancel came first), 'lost' (another agent of this node took it and is
 * gone), 'stale' (the hand-off no longer matches the record).
 */
export const claimJob = new Script(
  'claim-job',
  `
local id, node, attempt, agent, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = jobKey(id)
local state = field(key, 'state')
if (state ~= 'PLACED' and state ~= 'RUNNING') or not hasShare(key, node)
    or field(key, 'attempt') ~= attempt then
  return {0, 'stale'}
end
if rcall('GET', nodeKey(node, 'alive')) ~= agent then return {0, 'stale'} end
local owner = shareAgent(key, node)
if owner ~= '' then
  if owner == agent then return {0, 'stale'} end
  return {0, 'lost'}
end
if field(key, 'cancelRequested') == '1' then return {0, 'cancelled'} end
rcall('HSET', key, 'agent@' .. node, agent, 'updatedAt', now, 'message', 'launching ranks on ' .. node)
if field(key, 'node') == node then rcall('HSET', key, 'agent', agent) end
return {1, 'ok'}
`,
);

/**
 * mark-running — ARGV: prefix, id, node, attempt, agentId, pidsCsv, now
 * Records that the ranks of a node's share have started. Guarantees: only the agent that claimed
 * the share of the current attempt records it, once; the job moves PLACED → RUNNING (with every
 * rank's pid, in rank order) when the last share's ranks have started. Returns 1 when recorded.
 */
export const markRunning = new Script(
  'mark-running',
  `
local id, node, attempt, agent, pids, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local key = jobKey(id)
if field(key, 'state') ~= 'PLACED' or field(key, 'attempt') ~= attempt or shareAgent(key, node) ~= agent
    or rcall('HEXISTS', key, 'pids@' .. node) == 1 then
  return 0
end
rcall('HSET', key, 'pids@' .. node, pids, 'updatedAt', now)
local all = {}
for _, share in ipairs(sharesOf(key)) do
  local started = rcall('HGET', key, 'pids@' .. share.node)
  if not started then return 1 end
  all[#all + 1] = started
end
rcall('HSET', key, 'state', 'RUNNING', 'pids', table.concat(all, ','), 'startedAt', now,
  'message', 'running')
emit(id, 'running', now)
return 1
`,
);

/**
 * share-succeeded — ARGV: prefix, id, node, attempt
 * Records that every rank of a node's share of a running gang exited 0. Guarantees: the attempt
 * succeeds only when every share has (a gang spanning nodes is done when its last node is), so
 * the first node to finish never ends the attempt while the others' ranks are still finishing.
 * Returns 1 when every share has now succeeded (the caller ends the attempt), 0 while others run,
 * -1 when this is no longer the current running attempt with a share on this node.
 */
export const shareSucceeded = new Script(
  'share-succeeded',
  `
local id, node, attempt = ARGV[2], ARGV[3], ARGV[4]
local key = jobKey(id)
if field(key, 'state') ~= 'RUNNING' or field(key, 'attempt') ~= attempt or not hasShare(key, node) then
  return -1
end
rcall('HSET', key, 'succeeded@' .. node, '1')
for _, share in ipairs(sharesOf(key)) do
  if rcall('HEXISTS', key, 'succeeded@' .. share.node) == 0 then return 0 end
end
return 1
`,
);

/**
 * end-attempt — ARGV: prefix, id, node, attempt, newState, message, now, retryAt, countRestart, ifLost
 * Closes one attempt, as reported by the agent of one of its nodes (or for it): frees its devices
 * on every node of the gang and records what comes next — SUCCEEDED, FAILED, CANCELLED, or
 * RECOVERING (waiting again, not placed before retryAt). Guarantees: applied at most once per
 * attempt (it must be the job's current attempt, with a share on this node, still PLACED or
 * RUNNING), so the agents, the scheduler's dead-node sweep and a retry after a crash may all report
 * the same attempt safely; only devices this job holds are freed; the telemetry token is revoked;
 * a requested cancel always ends as CANCELLED; the agents of the gang's other nodes are told in the
 * same step (node control channel), so they stop their shares: a gang lives and dies whole. With
 * ifLost=1 it applies only if this node's lease is gone or now belongs to an agent other than the
 * one that took its share (checked in the same step, so a live agent's job is never taken from
 * it). Returns the state applied, or '' if not.
 */
export const endAttempt = new Script(
  'end-attempt',
  `
local id, node, attempt, newState, message = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now, retryAt, countRestart, ifLost = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
local key = jobKey(id)
local state = field(key, 'state')
if (state ~= 'PLACED' and state ~= 'RUNNING') or field(key, 'attempt') ~= attempt
    or not hasShare(key, node) then
  return ''
end
if ifLost == '1' then
  local lease = rcall('GET', nodeKey(node, 'alive'))
  local owner = shareAgent(key, node)
  if lease and (owner == '' or owner == lease) then return '' end
end
if field(key, 'cancelRequested') == '1' then
  newState = 'CANCELLED'
  message = 'cancelled (' .. message .. ')'
end
local shares = sharesOf(key)
for _, share in ipairs(shares) do
  local deviceTable = nodeKey(share.node, 'devices')
  for _, d in ipairs(splitNumbers(share.devices)) do
    if rcall('HGET', deviceTable, d) == id then rcall('HDEL', deviceTable, d) end
  end
  rcall('HDEL', key, 'agent@' .. share.node, 'pids@' .. share.node, 'succeeded@' .. share.node)
  if share.node ~= node then
    rcall('PUBLISH', nodeKey(share.node, 'control'),
      cjson.encode({ type = 'ended', jobId = id, attempt = tonumber(attempt), reason = message }))
  end
end
rcall('HSET', key, 'state', newState, 'deviceIndices', '', 'token', '', 'agent', '', 'pids', '',
  'updatedAt', now, 'message', message)
rcall('SREM', prefix .. ':jobs:active', id)
if newState == 'RECOVERING' then
  rcall('HINCRBY', key, 'restarts', countRestart)
  rcall('HSET', key, 'retryAt', retryAt, 'queuedAt', retryAt)
  rcall('SADD', prefix .. ':jobs:waiting', id)
else
  rcall('HSET', key, 'finishedAt', now)
  rcall('HDEL', key, 'cancelRequested')
end
emit(id, message, now)
return newState
`,
);

/**
 * cancel-job — ARGV: prefix, id, now
 * Cancels a job wherever it is. Guarantees: a waiting job becomes CANCELLED in the same step that
 * takes it out of the waiting index, so no scheduler can place it afterwards (place-job checks the
 * state); a job holding devices is marked and the agent of each of its nodes told (node control
 * channel) in one step, and keeps its devices until end-attempt frees them, after its ranks are
 * gone. Returns {accepted 0/1, previousState}.
 */
export const cancelJob = new Script(
  'cancel-job',
  `
local id, now = ARGV[2], ARGV[3]
local key = jobKey(id)
local state = field(key, 'state')
if state == '' then return {0, ''} end
if state == 'QUEUED' or state == 'RECOVERING' then
  local held = field(key, 'holdNode')
  if held ~= '' and rcall('GET', nodeKey(held, 'hold')) == id then rcall('DEL', nodeKey(held, 'hold')) end
  rcall('HSET', key, 'state', 'CANCELLED', 'finishedAt', now, 'updatedAt', now,
    'message', 'cancelled while ' .. string.lower(state))
  rcall('HDEL', key, 'holdNode', 'retryAt')
  rcall('SREM', prefix .. ':jobs:waiting', id)
  emit(id, 'cancelled while ' .. string.lower(state), now)
  return {1, state}
end
if state == 'PLACED' or state == 'RUNNING' then
  if field(key, 'cancelRequested') ~= '1' then
    rcall('HSET', key, 'cancelRequested', '1', 'updatedAt', now, 'message', 'cancel requested')
    local command = cjson.encode({ type = 'cancel', jobId = id, attempt = tonumber(field(key, 'attempt')) })
    for _, share in ipairs(sharesOf(key)) do rcall('PUBLISH', nodeKey(share.node, 'control'), command) end
    emit(id, 'cancel requested', now)
  end
  return {1, state}
end
return {0, state}
`,
);

/**
 * hold-node — ARGV: prefix, id, node, now
 * Keeps a node for a starving job (the anti-starvation policy in scheduler.ts): from now on
 * place-job puts no other job on it, so its running jobs drain until the starving job fits.
 * Guarantees: a node is kept for one job at most, a job keeps one node at most, and only a
 * waiting job on a live node big enough for it is kept for. Returns 1 when the hold was taken.
 */
export const holdNode = new Script(
  'hold-node',
  `
local id, node, now = ARGV[2], ARGV[3], ARGV[4]
local key = jobKey(id)
local state = field(key, 'state')
if state ~= 'QUEUED' and state ~= 'RECOVERING' then return 0 end
if field(key, 'holdNode') ~= '' then return 0 end
if rcall('EXISTS', nodeKey(node, 'alive')) == 0 then return 0 end
if (tonumber(field(nodeKey(node), 'devices')) or 0) < tonumber(field(key, 'devices')) then return 0 end
if rcall('SET', nodeKey(node, 'hold'), id, 'NX') == false then return 0 end
local message = 'waited too long: keeping node ' .. node .. ' free for this job'
rcall('HSET', key, 'holdNode', node, 'updatedAt', now, 'message', message)
emit(id, message, now)
return 1
`,
);

/**
 * release-hold — ARGV: prefix, id, node
 * Drops a job's hold on a node (the job left the queue, or the node died). Guarantees: only this
 * job's hold is removed, never another job's; idempotent.
 */
export const releaseHold = new Script(
  'release-hold',
  `
local id, node = ARGV[2], ARGV[3]
if rcall('GET', nodeKey(node, 'hold')) == id then rcall('DEL', nodeKey(node, 'hold')) end
if field(jobKey(id), 'holdNode') == node then rcall('HDEL', jobKey(id), 'holdNode') end
return 1
`,
);

/**
 * register-node — ARGV: prefix, name, agentId, leaseMs, forgetMs, field, value, …
 * Takes or renews a node agent's lease and writes its inventory. Guarantees: one live agent per
 * node name — while another agent's lease is alive the registration is refused (the caller waits
 * for that lease to expire); the lease and inventory are written together; the node's first
 * registration after an absence is announced on the nodes channel. Returns {1} or {0, holder}.
 */
export const registerNode = new Script(
  'register-node',
  `
local name, agent, leaseMs, forgetMs = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local current = rcall('GET', nodeKey(name, 'alive'))
if current and current ~= agent then return {0, current} end
rcall('SET', nodeKey(name, 'alive'), agent, 'PX', leaseMs)
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
rcall('HSET', nodeKey(name), unpack(fields))
rcall('PEXPIRE', nodeKey(name), forgetMs)
rcall('SADD', prefix .. ':nodes', name)
if not current then rcall('PUBLISH', prefix .. ':events:nodes', name) end
return {1}
`,
);

/**
 * release-lease — ARGV: prefix, name, agentId
 * Ends an agent's lease when it stops cleanly. Guarantees: only the holder's own lease is removed.
 */
export const releaseLease = new Script(
  'release-lease',
  `
local name, agent = ARGV[2], ARGV[3]
if rcall('GET', nodeKey(name, 'alive')) == agent then rcall('DEL', nodeKey(name, 'alive')) end
return 1
`,
);

/**
 * resume-job — ARGV: prefix, id, now, message
 * Puts a FAILED or CANCELLED job back in the queue under the same id, so its next attempt runs in
 * the same run folder and the agent resumes it from its newest valid checkpoint. Guarantees: only
 * an ended job that did not succeed is resumed, once (it is QUEUED and waiting in the same step,
 * so a second resume is refused); its restart count starts again from 0, so max_restarts applies
 * afresh; its attempt number carries on, so nothing of an earlier attempt can act on the new one.
 * Returns {accepted 0/1, previousState}.
 */
export const resumeJob = new Script(
  'resume-job',
  `
local id, now, message = ARGV[2], ARGV[3], ARGV[4]
local key = jobKey(id)
local state = field(key, 'state')
if state ~= 'FAILED' and state ~= 'CANCELLED' then return {0, state} end
rcall('HSET', key, 'state', 'QUEUED', 'restarts', '0', 'queuedAt', now, 'updatedAt', now, 'message', message)
rcall('HDEL', key, 'finishedAt', 'retryAt', 'cancelRequested', 'holdNode')
rcall('SADD', prefix .. ':jobs:waiting', id)
emit(id, message, now)
return {1, state}
`,
);
