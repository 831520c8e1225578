-- Move one dead letter back to its stream as a fresh entry (deliveries reset).
-- Returns the new job id, or false when another retry took it first.
-- KEYS: dlq, stream.  ARGV: dlq entry id, payload.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
    return false
end
return redis.call('XADD', KEYS[2], '*', 'payload', ARGV[2], 'deliveries', 0)
