"""The one Lua script that runs every shared circuit-breaker transition inside Redis.

Redis runs a script atomically, so each transition is a single step no other
process can interleave with: no read-modify-write races. Time is the Redis
server's own clock (``TIME``), the same for every process. Half-open permits
are members of a sorted set scored by their lease expiry: a probe holder that
dies frees its slot when the lease runs out.

KEYS: state hash, permits sorted set, window (a string ring of ``0``/``1`` for
a count window, a hash of buckets for a time window).

ARGV: op (``admit``, ``record``, ``force`` or ``sync``), the config (see
``RedisBackend``), then the op's arguments. Every op first flushes the
caller's batched closed-state successes.

Returns: ``{granted, state, version, retry_after_ms, lease, consecutive,
window_calls, window_failures, openings, opened_at_ms, permits_in_use,
event, reason, open_for_ms}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._policy import FailureRate

if TYPE_CHECKING:
    from ._policy import BreakerConfig

__all__ = ["SCRIPT", "STATES", "config_args"]

STATES = ("closed", "open", "half_open", "forced_open", "forced_closed")
"""Numeric state codes used by the script, in order."""

SCRIPT = r"""
local K, P, W = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local kind = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local wsize = tonumber(ARGV[4])
local minimum = tonumber(ARGV[5])
local permits = tonumber(ARGV[6])
local needed = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local max_half = tonumber(ARGV[9])
local base, mult = tonumber(ARGV[10]), tonumber(ARGV[11])
local cap, jitter = tonumber(ARGV[12]), tonumber(ARGV[13])
local draw, hint = tonumber(ARGV[14]), tonumber(ARGV[15])
local skew, expire = tonumber(ARGV[16]), tonumber(ARGV[17])
local batch = tonumber(ARGV[18])
local ticket, outcome, seen = tonumber(ARGV[19]), tonumber(ARGV[20]), tonumber(ARGV[21])
local forced = tonumber(ARGV[22])

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + skew

local f = redis.call('HMGET', K, 'state', 'version', 'opened_at', 'open_until', 'openings',
  'half_since', 'probe_ok', 'consecutive', 'cursor', 'wcalls', 'wfails', 'seq')
local state = tonumber(f[1]) or 0
local version = tonumber(f[2]) or 0
local opened_at = tonumber(f[3]) or 0
local open_until = tonumber(f[4]) or 0
local openings = tonumber(f[5]) or 0
local half_since = tonumber(f[6]) or 0
local probe_ok = tonumber(f[7]) or 0
local consecutive = tonumber(f[8]) or 0
local cursor = tonumber(f[9]) or 0
local wcalls = tonumber(f[10]) or 0
local wfails = tonumber(f[11]) or 0
local seq = tonumber(f[12]) or 0
local event, reason, open_for = 0, 0, 0
local width = wsize / 20

local function window_expire()
  if kind ~= 2 then return end
  local horizon = now - wsize
  local fields = redis.call('HGETALL', W)
  wcalls, wfails = 0, 0
  for i = 1, #fields, 2 do
    local name, value = fields[i], tonumber(fields[i + 1])
    local idx = tonumber(string.sub(name, 2))
    if (idx + 1) * width <= horizon then
      redis.call('HDEL', W, name)
    elseif string.sub(name, 1, 1) == 'c' then
      wcalls = wcalls + value
    else
      wfails = wfails + value
    end
  end
end

local function window_add(failed, count)
  if failed == 1 then consecutive = consecutive + count else consecutive = 0 end
  if kind == 1 then
    local n = math.min(count, wsize)
    for _ = 1, n do
      if wcalls < wsize then
        redis.call('SETRANGE', W, wcalls, tostring(failed))
        wcalls = wcalls + 1
      else
        local old = tonumber(redis.call('GETRANGE', W, cursor, cursor))
        redis.call('SETRANGE', W, cursor, tostring(failed))
        wfails = wfails - old
        cursor = (cursor + 1) % wsize
      end
      wfails = wfails + failed
    end
  elseif kind == 2 then
    local idx = math.floor(now / width)
    redis.call('HINCRBY', W, 'c' .. idx, count)
    if failed == 1 then redis.call('HINCRBY', W, 'f' .. idx, count) end
    wcalls = wcalls + count
    wfails = wfails + failed * count
  end
end

local function tripped()
  if kind == 0 then return consecutive >= threshold end
  return wcalls >= minimum and wfails / wcalls >= threshold
end

local function window_clear()
  consecutive, cursor, wcalls, wfails = 0, 0, 0, 0
  redis.call('DEL', W)
end

local function open(why)
  openings = openings + 1
  local raw = base * mult ^ (openings - 1)
  if raw > cap then raw = cap end
  open_for = raw * (1 - jitter * (1 - draw))
  if hint > open_for then open_for = hint end
  state, opened_at, open_until = 1, now, now + open_for
  version = version + 1
  redis.call('DEL', P)
  event, reason = 1, why
  window_clear()
end

local function close(why)
  state, openings, probe_ok = 0, 0, 0
  version = version + 1
  redis.call('DEL', P)
  event, reason = 3, why
  window_clear()
end

local granted, lease = 0, 0
window_expire()
if batch > 0 and state == 0 then
  -- successes counted by a process since its last round trip
  window_add(0, batch)
  if tripped() then open(1) end
end
if op == 'admit' then
  if state == 1 and now >= open_until then
    state, half_since, probe_ok = 2, now, 0
    version = version + 1
    redis.call('DEL', P)
    event = 2
  end
  if state == 0 or state == 4 then
    granted = 1
  elseif state == 2 then
    if max_half >= 0 and now - half_since >= max_half then
      open(3)
    else
      redis.call('ZREMRANGEBYSCORE', P, '-inf', now)
      if redis.call('ZCARD', P) < permits then
        seq = seq + 1
        lease = seq
        redis.call('ZADD', P, now + ttl, lease)
        redis.call('PEXPIRE', P, math.ceil(ttl * 1000) + 1000)
        granted = 1
      end
    end
  end
elseif op == 'record' then
  if ticket == 0 then
    if state == 0 and version == seen and outcome ~= 2 then
      window_add(outcome, 1)
      if tripped() then open(1) end
    end
  elseif redis.call('ZREM', P, ticket) == 1 and state == 2 and outcome ~= 2 then
    -- a lease still held: the trial is current (an expired or stale one is ignored)
    if outcome == 1 then
      open(2)
    else
      probe_ok = probe_ok + 1
      if probe_ok >= needed then close(5) end
    end
  end
elseif op == 'force' then
  redis.call('DEL', P)
  version = version + 1
  if forced < 0 then
    local was = state
    close(6)
    if was == 0 then event = 0 end
  else
    state = forced
    if forced == 3 then opened_at, event, reason = now, 1, 4 else event, reason = 3, 4 end
  end
end

redis.call('HSET', K, 'state', state, 'version', version, 'opened_at', opened_at,
  'open_until', open_until, 'openings', openings, 'half_since', half_since,
  'probe_ok', probe_ok, 'consecutive', consecutive, 'cursor', cursor, 'wcalls', wcalls,
  'wfails', wfails, 'seq', seq)
redis.call('EXPIRE', K, expire)
if kind ~= 0 then redis.call('EXPIRE', W, expire) end

local retry_ms = -1
if state == 1 then retry_ms = math.max(0, math.floor((open_until - now) * 1000)) end
local in_use = redis.call('ZCOUNT', P, '(' .. now, '+inf')
return {granted, state, version, retry_ms, lease, consecutive, wcalls, wfails, openings,
  math.floor(opened_at * 1000), in_use, event, reason, math.floor(open_for * 1000)}
"""


def config_args(config: BreakerConfig) -> tuple[list[object], int]:
    """The script's config arguments, and how long (s) idle keys live."""
    trip, opening, half = config.trip, config.open_duration, config.half_open
    if isinstance(trip, FailureRate):
        kind = 1 if trip.window_calls is not None else 2
        size = float(trip.window_calls or trip.window_seconds or 0)
        threshold, minimum = float(trip.threshold), trip.minimum_calls
    else:
        kind, size, threshold, minimum = 0, 0.0, float(trip.threshold), 0
    args: list[object] = [
        kind,
        threshold,
        size,
        minimum,
        half.permits,
        half.success_threshold,
        half.permit_ttl,
        -1 if half.max_duration is None else half.max_duration,
        opening.seconds,
        opening.multiplier,
        opening.cap,
        opening.jitter,
    ]
    # Idle keys expire, so keyed breakers do not pile up in Redis forever;
    # long enough to outlive any open period, window or lease.
    horizon = opening.cap + (size if kind == 2 else 0.0) + half.permit_ttl
    return args, int(max(86_400.0, 2 * horizon))
