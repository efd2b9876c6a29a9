-- products_read.lua: price and availability of several products at once.
--
-- KEYS[1..n] product hashes of one store
--
-- Returns a flat list, six entries a product in KEYS order: price, promo_price,
-- promo_label, stock, step and active, "" where absent; price "" means the
-- catalog does not know the product.

local result = {}
for _, product_key in ipairs(KEYS) do
    local product = redis.call('HMGET', product_key,
        'price', 'promo_price', 'promo_label', 'stock', 'step', 'active')
    for i = 1, 6 do
        result[#result + 1] = product[i] or ''
    end
end
return result
