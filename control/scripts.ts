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
-- A state change goes to the job's capped event stream (history for late watchers) and to the
-- events channel (live watchers), in the same step as the change itself.
local function emit(id, message, now)
  local key = jobKey(id)
  local event = cjson.encode({
    jobId = id,
    state = field(key, 'state'),
    attempt = tonumber(field(key, 'attempt')) or 0,
    node = field(key, 'node'),
    devices = field(key, 'deviceIndices'),
    message = message,
    timeMs = tonumber(now)
  })
  rcall('XADD', key .. ':events', 'MAXLEN', '~', '1000', '*', 'event', event)
  rcall('PUBLISH', prefix .. ':events:jobs', event)
end
local function splitNumbers(csv)
  local out = {}
  for part in string.gmatch(csv, '[^,]+') do out[#out + 1] = part end
  return out
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
 * place-job — ARGV: prefix, id, node, expectedAttempt, token, now
 * Reserves the job's devices on one node and records the placement, as one step. Guarantees: the
 * gang is placed whole or not at all (all the devices it needs on this node, or nothing changes);
 * a device is never given to two jobs (only devices without an entry in the device table are
 * taken); a job is placed once per attempt (state QUEUED/RECOVERING and the attempt the caller
 * saw are checked and advanced together); nothing is placed on a node whose agent's lease has
 * expired, before a recovering job's backoff is over, or on a node kept for another starving job.
 * Returns {1, attempt, devicesCsv} or {0, reason}.
 */
export const placeJob = new Script(
  'place-job',
  `
local id, node, expected, token, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local key = jobKey(id)
local state = field(key, 'state')
if state ~= 'QUEUED' and state ~= 'RECOVERING' then return {0, 'job is ' .. state} end
if field(key, 'attempt') ~= expected then return {0, 'attempt changed'} end
local retryAt = tonumber(field(key, 'retryAt'))
if retryAt and retryAt > now then return {0, 'backing off'} end
if rcall('EXISTS', nodeKey(node, 'alive')) == 0 then return {0, 'node ' .. node .. ' is not alive'} end
local hold = rcall('GET', nodeKey(node, 'hold'))
if hold and hold ~= id then return {0, 'node ' .. node .. ' is kept for ' .. hold} end
local total = tonumber(field(nodeKey(node), 'devices')) or 0
local need = tonumber(field(key, 'devices'))
local deviceTable = nodeKey(node, 'devices')
local free = {}
for d = 0, total - 1 do
  if #free == need then break end
  if rcall('HEXISTS', deviceTable, tostring(d)) == 0 then free[#free + 1] = tostring(d) end
end
if #free < need then return {0, 'only ' .. #free .. ' of ' .. need .. ' devices free on ' .. node} end
for _, d in ipairs(free) do rcall('HSET', deviceTable, d, id) end
local attempt = tonumber(expected) + 1
local devices = table.concat(free, ',')
rcall('HSET', key, 'state', 'PLACED', 'attempt', attempt, 'node', node, 'deviceIndices', devices,
  'token', token, 'agent', '', 'pids', '', 'placedAt', now, 'updatedAt', now,
  'message', 'placed on ' .. node .. ' devices ' .. devices)
rcall('HDEL', key, 'retryAt', 'holdNode')
if hold == id then rcall('DEL', nodeKey(node, 'hold')) end
rcall('SREM', prefix .. ':jobs:waiting', id)
rcall('SADD', prefix .. ':jobs:active', id)
emit(id, 'placed on ' .. node .. ' devices ' .. devices, now)
return {1, attempt, devices}
`,
);

/**
 * claim-job — ARGV: prefix, id, node, attempt, agentId, now
 * A node agent takes a job placed on its node before it launches ranks. Guarantees: an attempt is
 * launched by one agent at most — only the agent holding the node's lease may claim, only the
 * attempt that was placed there, and only once. Returns {1, 'ok'} or {0, why}: 'cancelled' (a
 * cancel came first), 'lost' (another agent of this node took it and is gone), 'stale' (the
 * hand-off no longer matches the record).
 */
export const claimJob = new Script(
  'claim-job',
  `
local id, node, attempt, agent, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = jobKey(id)
local state = field(key, 'state')
if (state ~= 'PLACED' and state ~= 'RUNNING') or field(key, 'node') ~= node
    or field(key, 'attempt') ~= attempt then
  return {0, 'stale'}
end
if rcall('GET', nodeKey(node, 'alive')) ~= agent then return {0, 'stale'} end
local owner = field(key, 'agent')
if owner ~= '' then
  if owner == agent then return {0, 'stale'} end
  return {0, 'lost'}
end
if field(key, 'cancelRequested') == '1' then return {0, 'cancelled'} end
rcall('HSET', key, 'agent', agent, 'updatedAt', now, 'message', 'launching ranks on ' .. node)
return {1, 'ok'}
`,
);

/**
 * mark-running — ARGV: prefix, id, attempt, agentId, pidsCsv, now
 * Records that every rank of the attempt has started. Guarantees: only the claiming agent's
 * current attempt moves PLACED → RUNNING; returns 1 when it did.
 */
export const markRunning = new Script(
  'mark-running',
  `
local id, attempt, agent, pids, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = jobKey(id)
if field(key, 'state') ~= 'PLACED' or field(key, 'attempt') ~= attempt or field(key, 'agent') ~= agent then
  return 0
end
rcall('HSET', key, 'state', 'RUNNING', 'pids', pids, 'startedAt', now, 'updatedAt', now,
  'message', 'running')
emit(id, 'running', now)
return 1
`,
);

/**
 * end-attempt — ARGV: prefix, id, node, attempt, newState, message, now, retryAt, countRestart, ifLost
 * Closes one attempt: frees its devices and records what comes next — SUCCEEDED, FAILED,
 * CANCELLED, or RECOVERING (waiting again, not placed before retryAt). Guarantees: applied at most
 * once per attempt (it must be the job's current attempt, on this node, still PLACED or RUNNING),
 * so the agent, the scheduler's dead-node sweep and a retry after a crash may all report the same
 * attempt safely; only devices this job holds are freed; the telemetry token is revoked; a
 * requested cancel always ends as CANCELLED. With ifLost=1 it applies only if the node's lease is
 * gone or now belongs to an agent other than the one that took the attempt (checked in the same
 * step, so a live agent's job is never taken from it). Returns the state applied, or '' if not.
 */
export const endAttempt = new Script(
  'end-attempt',
  `
local id, node, attempt, newState, message = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now, retryAt, countRestart, ifLost = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
local key = jobKey(id)
local state = field(key, 'state')
if (state ~= 'PLACED' and state ~= 'RUNNING') or field(key, 'attempt') ~= attempt
    or field(key, 'node') ~= node then
  return ''
end
if ifLost == '1' then
  local lease = rcall('GET', nodeKey(node, 'alive'))
  local owner = field(key, 'agent')
  if lease and (owner == '' or owner == lease) then return '' end
end
if field(key, 'cancelRequested') == '1' then
  newState = 'CANCELLED'
  message = 'cancelled (' .. message .. ')'
end
local deviceTable = nodeKey(node, 'devices')
for _, d in ipairs(splitNumbers(field(key, 'deviceIndices'))) do
  if rcall('HGET', deviceTable, d) == id then rcall('HDEL', deviceTable, d) end
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
 * state); a job holding devices is marked and its agent told (node control channel) in one step,
 * and keeps its devices until end-attempt frees them, after its ranks are gone. Returns
 * {accepted 0/1, previousState}.
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
    local node = field(key, 'node')
    rcall('PUBLISH', nodeKey(node, 'control'),
      cjson.encode({ type = 'cancel', jobId = id, attempt = tonumber(field(key, 'attempt')) }))
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
