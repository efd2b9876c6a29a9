-- cart_change.lua: one cart operation, checked and applied atomically, at most once.
--
-- KEYS[1] cart      hash sku -> quantity (decimal text)
-- KEYS[2] lines     hash sku -> "seq" or "seq<TAB>price<TAB>name"; field "" is the
--                   last sequence number given, so lines list in first-added order
-- KEYS[3] delivery  string "fingerprint\nreason\navailable", the first answer
-- KEYS[4] events    stream of applied changes, capped
-- KEYS[5] product   hash of the line's catalog product (absent for clear)
--
-- ARGV[1]  action            add | remove | update_quantity | clear
-- ARGV[2]  session_id        as received, recorded in the event
-- ARGV[3]  sku
-- ARGV[4]  quantity_milli    requested quantity in thousandths, "" when none
-- ARGV[5]  catalog_mode      strict | open
-- ARGV[6]  line_max_milli    the most one line may hold, in thousandths
-- ARGV[7]  cart_max_lines
-- ARGV[8]  cart_ttl_s
-- ARGV[9]  fingerprint       sha256 of the delivery's body
-- ARGV[10] dedup_ttl_s
-- ARGV[11] events_max        approximate stream cap, 0 for no events
-- ARGV[12] open_name         used only for a product the catalog does not know
-- ARGV[13] open_price        decimal text, the same
--
-- Returns {status, reason, available}: status is "applied", "replayed" (the
-- delivery was seen before: its first answer) or "conflict" (the same delivery id
-- with another body). reason is "" for success; available is decimal text or "".

local cart_key, lines_key, delivery_key, events_key, product_key =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local action, session_id, sku = ARGV[1], ARGV[2], ARGV[3]
local quantity = tonumber(ARGV[4])
local catalog_mode = ARGV[5]
local line_max = tonumber(ARGV[6])
local cart_max_lines = tonumber(ARGV[7])
local cart_ttl_s = tonumber(ARGV[8])
local fingerprint = ARGV[9]
local dedup_ttl_s = tonumber(ARGV[10])
local events_max = tonumber(ARGV[11])
local open_name, open_price = ARGV[12], ARGV[13]

local SCALE = 1000

-- Decimal text with at most three places to exact thousandths, without the
-- rounding a detour through a double's fraction would bring.
local function to_milli(text)
    if not text or text == '' then
        return nil
    end
    local whole, frac = string.match(text, '^(%d+)%.?(%d*)$')
    if not whole then
        return nil
    end
    frac = string.sub(frac .. '000', 1, 3)
    return tonumber(whole) * SCALE + tonumber(frac)
end

local function to_text(milli)
    local whole = math.floor(milli / SCALE)
    local frac = milli % SCALE
    if frac == 0 then
        return string.format('%d', whole)
    end
    local text = string.format('%d.%03d', whole, frac)
    return (string.gsub(text, '0+$', ''))
end

-- A repeated delivery changes nothing and gets its first answer back; this check
-- shares the script's atomicity, so copies racing on other instances see it too.
local record = redis.call('GET', delivery_key)
if record then
    local seen, reason, available = string.match(record, '^(.-)\n(.-)\n(.*)$')
    if seen ~= fingerprint then
        return {'conflict', '', ''}
    end
    return {'replayed', reason, available}
end

local function answer(reason, available)
    local available_text = available and to_text(available) or ''
    redis.call('SET', delivery_key,
        fingerprint .. '\n' .. reason .. '\n' .. available_text, 'EX', dedup_ttl_s)
    return {'applied', reason, available_text}
end

local function record_event(line_quantity)
    if events_max > 0 then
        redis.call('XADD', events_key, 'MAXLEN', '~', events_max, '*',
            'action', action, 'session', session_id, 'sku', sku,
            'quantity', line_quantity)
    end
end

local function touch()
    if redis.call('EXISTS', cart_key) == 1 then
        redis.call('EXPIRE', cart_key, cart_ttl_s)
        redis.call('EXPIRE', lines_key, cart_ttl_s)
    else
        -- The order counter must not outlive the last line.
        redis.call('DEL', lines_key)
    end
end

if action == 'clear' then
    redis.call('DEL', cart_key, lines_key)
    record_event('')
    return answer('')
end

local current = to_milli(redis.call('HGET', cart_key, sku)) or 0
local product = redis.call('HMGET', product_key,
    'price', 'stock', 'step', 'max_per_customer', 'active')
local known = product[1] ~= false
local stock = known and to_milli(product[2]) or nil
local step = known and to_milli(product[3]) or SCALE
local per_customer = known and to_milli(product[4]) or nil
local active = not known or (product[5] ~= '0')

local target
if action == 'add' then
    target = current + quantity
elseif action == 'update_quantity' then
    target = quantity
else
    target = 0
end

if action ~= 'remove' and (step <= 0 or quantity % step ~= 0) then
    return answer('invalid_quantity')
end

-- The most the line may hold, offered to the shopper as an alternative.
local function most_allowed()
    local most = line_max
    if stock and stock < most then most = stock end
    if per_customer and per_customer < most then most = per_customer end
    return most - most % step
end

-- Stock and limits guard growth only: lowering a line is always allowed, even
-- when stock has fallen below it or the product has left the catalog.
if target > current then
    if not known and catalog_mode ~= 'open' then
        return answer('product_not_found')
    end
    -- Less than one step left (0 included) is none a shopper could buy.
    if not active or (stock and stock < step) then
        return answer('out_of_stock')
    end
    if stock and target > stock then
        return answer('quantity_exceeded', most_allowed())
    end
    if per_customer and target > per_customer then
        return answer('max_' .. to_text(per_customer) .. '_per_customer',
            most_allowed())
    end
    if target > line_max then
        return answer('quantity_exceeded', most_allowed())
    end
end

-- With no line to lower, a product the strict catalog does not know is named as
-- such, before not_in_cart, as the contract orders them.
if current == 0 and not known and catalog_mode ~= 'open' then
    return answer('product_not_found')
end

if current == 0 and action ~= 'add' then
    return answer('not_in_cart')
end

if current == 0 and redis.call('HLEN', cart_key) >= cart_max_lines then
    return answer('cart_full')
end

if target == 0 then
    redis.call('HDEL', cart_key, sku)
    redis.call('HDEL', lines_key, sku)
else
    redis.call('HSET', cart_key, sku, to_text(target))
    if current == 0 then
        local seq = redis.call('HINCRBY', lines_key, '', 1)
        local meta = tostring(seq)
        if not known then
            meta = meta .. '\t' .. open_price .. '\t' .. open_name
        end
        redis.call('HSET', lines_key, sku, meta)
    end
end

touch()
record_event(to_text(target))
return answer('')
