-- Move an entry the caller still holds to the dead-letter stream, with the reason.
-- Nothing happens (returns false) when the entry was already acked or reclaimed: a stale
-- holder never dead-letters work someone else now owns.
-- KEYS: stream, dlq.  ARGV: group, job_id, payload, reason, now_ms.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
    return false
end
redis.call('XDEL', KEYS[1], ARGV[2])
return redis.call('XADD', KEYS[2], '*', 'payload', ARGV[3], 'job', ARGV[2],
    'reason', ARGV[4], 'at', ARGV[5])
