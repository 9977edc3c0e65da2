//! The Lua scripts: every decision of the protocol, atomic on the server.
//!
//! Each script names every key it touches in `KEYS`, all three of one idem
//! key (same hash tag, same slot). Times come from the server only: `PX`,
//! `PEXPIRE`, `PTTL` and `TIME`. Lua numbers are doubles, so the scripts
//! compare fencing tokens and fingerprints as the decimal strings they are
//! stored as, and format every computed number with `%.0f` (Lua's own
//! number-to-string conversion would write `1.7e+15`).
//!
//! A lease is stored as `<fence> <owner> <fingerprint> <lease ms>`: the
//! owner in 32 hex digits, the fingerprint in decimal (0 for none), and the
//! lease's length, which sets how long the fencing key outlives what it
//! guards: the lease, then the record. The fencing key only guards the
//! key's current lease or record, so each script sets its expiry outright.

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to the scripts.
macro_rules! lua_helpers {
    () => {
        r#"
local function parse_lease(v)
  return string.match(v, '^(%d+) (%x+) (%d+) (%d+)$')
end

-- Writes the last token issued for the key, to live `ms` milliseconds:
-- what it guards (a lease, a record) and one lease more. It guards
-- nothing else, so this may shorten it.
local function set_fence(key, fence, ms)
  redis.call('SET', key, fence, 'PX', string.format('%.0f', ms))
end
"#
    };
}

/// KEYS: record, lease, fence. ARGV: owner, fingerprint, lease ms.
///
/// Replies `{'record', bytes}`, `{'leased', fence, ttl ms}`,
/// `{'running', ttl ms}`, `{'mismatch'}`, or `{'corrupt', redis key,
/// bytes}` for a lease or fencing key this version cannot read.
pub(crate) const CLAIM: &str = concat!(
    lua_helpers!(),
    r#"
-- The caller read no record, but one may have been written since.
local rec = redis.call('GET', KEYS[1])
if rec then return {'record', rec} end

local cur = redis.call('GET', KEYS[2])
if cur then
  local fence, owner, fp = parse_lease(cur)
  if not fence then return {'corrupt', KEYS[2], cur} end
  local ttl = redis.call('PTTL', KEYS[2])
  -- The caller's own claim, whose reply was lost: the same lease.
  if owner == ARGV[1] then return {'leased', fence, ttl} end
  if fp ~= '0' and ARGV[2] ~= '0' and fp ~= ARGV[2] then return {'mismatch'} end
  return {'running', ttl}
end

-- A new lease. Its token is above the last one issued for the key while
-- the fencing key lives, and above every token issued before this
-- microsecond of the server's clock in any case: so tokens keep growing
-- across the fencing key's expiry and across a restart that lost it, as
-- long as the server's clock does not go back.
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('GET', KEYS[3])
if last then
  -- Below 2^53 - 1, so that last + 1 is exact in a double.
  if not string.match(last, '^%d+$') or #last > 16 or tonumber(last) >= 9007199254740991 then
    return {'corrupt', KEYS[3], last}
  end
  fence = math.max(fence, tonumber(last) + 1)
end
local fs = string.format('%.0f', fence)
local ms = tonumber(ARGV[3])
redis.call('SET', KEYS[2], fs .. ' ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[3])
set_fence(KEYS[3], fs, 2 * ms)
return {'leased', fs, ms}
"#
);

/// KEYS: lease, fence. ARGV: fence, owner, ttl ms. Replies 1, or 0 when
/// fenced.
const RENEW: &str = concat!(
    lua_helpers!(),
    r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local fence, owner, _, lease = parse_lease(cur)
if fence ~= ARGV[1] or owner ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
set_fence(KEYS[2], fence, tonumber(ARGV[3]) + tonumber(lease))
return 1
"#
);

/// KEYS: record, lease, fence. ARGV: fence, owner, retain ms, payload.
/// Replies 1, or 0 when fenced.
const COMPLETE: &str = concat!(
    lua_helpers!(),
    r#"
local cur = redis.call('GET', KEYS[2])
if cur then
  local fence, owner, fp, lease = parse_lease(cur)
  if fence ~= ARGV[1] or owner ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], 'idem1 ' .. fence .. ' ' .. fp .. '\n' .. ARGV[4], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  set_fence(KEYS[3], fence, tonumber(ARGV[3]) + tonumber(lease))
  return 1
end
-- A completion retried after a lost reply finds its own record.
local rec = redis.call('GET', KEYS[1])
if rec and string.match(rec, '^idem1 (%d+) ') == ARGV[1] then return 1 end
return 0
"#
);

/// KEYS: lease. ARGV: fence, owner. Replies 1, or 0 when fenced.
const RELEASE: &str = concat!(
    lua_helpers!(),
    r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local fence, owner = parse_lease(cur)
if fence ~= ARGV[1] or owner ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"#
);

pub(crate) static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM));
pub(crate) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));
pub(crate) static COMPLETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COMPLETE));
pub(crate) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
