-- catalog_load.lua: replace many products of one store at once, all or nothing.
--
-- KEYS[1..n] product hashes of one store
-- ARGV       for each product in KEYS order: the number of its fields, then
--            that many name, value pairs
--
-- Each product hash is replaced whole, so a field the new row leaves empty (an
-- ended promotion, say) does not linger. Returns the number of products written.

local at = 1
for _, product_key in ipairs(KEYS) do
    local field_count = tonumber(ARGV[at])
    redis.call('DEL', product_key)
    for j = at + 1, at + 2 * field_count, 2 do
        redis.call('HSET', product_key, ARGV[j], ARGV[j + 1])
    end
    at = at + 1 + 2 * field_count
end
return #KEYS
