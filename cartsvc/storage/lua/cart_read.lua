-- cart_read.lua: a cart's lines with their catalog products, in one round trip.
--
-- KEYS[1] cart   hash sku -> quantity
-- KEYS[2] lines  hash sku -> "seq" or "seq<TAB>price<TAB>name"
-- ARGV[1] product key prefix of the store, e.g. "cartsvc:{store-1}:product:"
--
-- Returns a flat list, seven entries a line: sku, quantity, line meta, and the
-- product's name, price, promo_price and unit ("" where absent).
--
-- Product keys cannot arrive through KEYS: which skus the cart holds is known
-- only here. They share the store's hash tag, so they live on the same cluster
-- slot as KEYS[1]; escape() must stay the rule of cartsvc/storage/keys.py.

local cart_key, lines_key = KEYS[1], KEYS[2]
local product_prefix = ARGV[1]

local function escape(id)
    return (string.gsub(id, '[^%w%.%_%~%-]', function(char)
        return string.format('%%%02X', string.byte(char))
    end))
end

local function text(value)
    return value or ''
end

local cart = redis.call('HGETALL', cart_key)
local result = {}
for i = 1, #cart, 2 do
    local sku, quantity = cart[i], cart[i + 1]
    local product = redis.call('HMGET', product_prefix .. escape(sku),
        'name', 'price', 'promo_price', 'unit')
    local meta = redis.call('HGET', lines_key, sku)
    local line = {sku, quantity, text(meta), text(product[1]), text(product[2]),
        text(product[3]), text(product[4])}
    for _, value in ipairs(line) do
        result[#result + 1] = value
    end
end
return result
