-- Reclaim entries idle longer than min_idle_ms in a consumer group, atomically:
-- each one is acknowledged and deleted, then appended again as a fresh entry any consumer
-- can read (deliveries + 1), or, past max_deliveries, moved to the dead-letter stream.
-- Atomic, so a consumer acking at the same moment either acks first (nothing is reclaimed)
-- or finds its entry gone (its ack reports 0): never both.
-- KEYS: stream, dlq.  ARGV: group, consumer, min_idle_ms, count, max_deliveries, now_ms,
-- cursor. Returns {next cursor, {old id, new id, ...}, {dead-lettered id, ...}}.
local stream, dlq = KEYS[1], KEYS[2]
local group, consumer = ARGV[1], ARGV[2]
local count, max_deliveries = tonumber(ARGV[4]), tonumber(ARGV[5])
local claimed = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], ARGV[7], 'COUNT', count)
local requeued, dead = {}, {}
for _, entry in ipairs(claimed[2]) do
    local id, raw = entry[1], entry[2]
    if raw then
        local fields = {}
        for i = 1, #raw, 2 do fields[raw[i]] = raw[i + 1] end
        local deliveries = (tonumber(fields['deliveries']) or 0) + 1
        redis.call('XACK', stream, group, id)
        redis.call('XDEL', stream, id)
        if deliveries >= max_deliveries then
            redis.call('XADD', dlq, '*', 'payload', fields['payload'], 'job', id,
                'reason', 'held by a dead consumer ' .. deliveries .. ' times', 'at', ARGV[6])
            table.insert(dead, id)
        else
            local new_id = redis.call('XADD', stream, '*', 'payload', fields['payload'],
                'deliveries', deliveries)
            table.insert(requeued, id)
            table.insert(requeued, new_id)
        end
    end
end
return {claimed[1], requeued, dead}
