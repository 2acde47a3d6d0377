-- acm.lua: a Wireshark and tshark dissector for acm over TCP (SPEC.md sections 3 to 8, the TCP
-- binding of section 14, the secure layer's envelopes of section 17).
--
-- Install: copy this one file into Wireshark's personal Lua plugins folder
-- (~/.local/lib/wireshark/plugins/ on Linux; Help > About Wireshark > Folders shows it), or
-- load it for one run with `tshark -X lua_script:acm.lua`.
--
-- acm is found on any TCP port by its magic AC 4D (a heuristic dissector; the connection is then
-- acm to its end). On a port another protocol registered, set the TCP preference "Try
-- heuristic sub-dissectors first" (tshark: -o tcp.try_heuristic_first:TRUE). Each frame shows its header, its type, flags by name, the control message's
-- fields by name (the table below is generated from proto/acm/v1/acm.proto), data fragments with
-- their transfer, index, total and offset in the transfer, the binding's OPEN and CLOSE, and
-- the secure layer's HANDSHAKE and RECORD envelopes. With the preference "Key log file" (tshark:
-- -o acm.keylog:FILE) naming a key log (SPEC section 17.12), records are opened and the frames
-- inside shown as plain ones. The field
-- `acm.fields` holds the decoded fields as one line, written as `acm proxy` writes them, and
-- every SPEC rule a frame breaks is an expert item and an `acm.rule` field.
--
-- Rules checked here: FRAME-2 to FRAME-8 and FRAME-10, DATA-1 to DATA-5, CTRL-1, LINK-2,
-- TCP-4 to TCP-6, SEC-5 and SEC-9 as an observer of one capture sees them. `acm proxy` checks
-- more (the contents of control bodies, such as LINK-3 or SESS-2).

-- BEGIN SCHEMA (generated from proto/acm/v1/acm.proto: do not edit by hand)
local SCHEMA = {
  messages = {
    ["Hello"] = {
      { 1, "min_version", "uint", "", false },
      { 2, "max_version", "uint", "", false },
      { 3, "device_id", "string", "", false },
      { 4, "max_frame_size", "uint", "", false },
      { 5, "keepalive_interval_ms", "uint", "", false },
      { 6, "features", "uint", "", false },
      { 7, "nonce", "bytes", "", false },
      { 8, "max_data_size", "uint", "", false },
    },
    ["LinkClose"] = {
      { 1, "reason", "enum", "LinkCloseReason", false },
      { 2, "message", "string", "", false },
    },
    ["Ping"] = {
      { 1, "value", "uint", "", false },
    },
    ["Pong"] = {
      { 1, "value", "uint", "", false },
    },
    ["PeerInfo"] = {
      { 1, "device_id", "string", "", false },
      { 2, "bundle_name", "string", "", false },
      { 3, "module_name", "string", "", false },
      { 4, "ability_name", "string", "", false },
      { 5, "service_name", "string", "", false },
    },
    ["ConnectOptions"] = {
      { 1, "need_send_data", "bool", "", false },
      { 2, "start_options", "enum", "StartOptionParams", false },
      { 3, "parameters", "message", "ConnectOptions.ParametersEntry", true },
    },
    ["ConnectOptions.ParametersEntry"] = {
      { 1, "key", "string", "", false },
      { 2, "value", "string", "", false },
    },
    ["ConnectRequest"] = {
      { 1, "token", "bytes", "", false },
      { 2, "source", "message", "PeerInfo", false },
      { 3, "target", "message", "PeerInfo", false },
      { 4, "options", "message", "ConnectOptions", false },
    },
    ["Accepted"] = {
    },
    ["Rejected"] = {
      { 1, "code", "enum", "ConnectErrorCode", false },
      { 2, "reason", "string", "", false },
    },
    ["ConnectResponse"] = {
      { 1, "token", "bytes", "", false },
      { 2, "accepted", "message", "Accepted", false },
      { 3, "rejected", "message", "Rejected", false },
    },
    ["Message"] = {
      { 1, "text", "string", "", false },
    },
    ["Disconnect"] = {
      { 1, "reason", "enum", "DisconnectReason", false },
      { 2, "error", "enum", "SessionError", false },
      { 3, "detail", "string", "", false },
    },
    ["CollaborateEvent"] = {
      { 1, "event_type", "enum", "CollaborateEventType", false },
      { 2, "message", "string", "", false },
    },
    ["DataFragmentHeader"] = {
      { 1, "transfer_id", "uint", "", false },
      { 2, "index", "uint", "", false },
      { 3, "total_length", "uint", "", false },
      { 4, "first", "bool", "", false },
      { 5, "last", "bool", "", false },
    },
  },
  enums = {
    ["FrameType"] = {
      [0] = "UNSPECIFIED",
      [1] = "HELLO",
      [2] = "LINK_CLOSE",
      [3] = "PING",
      [4] = "PONG",
      [5] = "CONNECT_REQUEST",
      [6] = "CONNECT_RESPONSE",
      [7] = "MESSAGE",
      [8] = "DATA",
      [9] = "DISCONNECT",
      [10] = "COLLABORATE_EVENT",
    },
    ["LinkCloseReason"] = {
      [0] = "UNSPECIFIED",
      [1] = "NORMAL",
      [2] = "PROTOCOL_ERROR",
      [3] = "NO_COMMON_VERSION",
      [4] = "FRAME_TOO_LARGE",
      [5] = "TIMEOUT",
      [6] = "RESOURCE_EXHAUSTED",
      [7] = "INTERNAL_ERROR",
    },
    ["StartOptionParams"] = {
      [0] = "UNSPECIFIED",
      [1] = "START_IN_FOREGROUND",
    },
    ["ConnectErrorCode"] = {
      [0] = "UNSPECIFIED",
      [1] = "CONNECTED_SESSION_EXISTS",
      [2] = "PEER_APP_REJECTED",
      [3] = "LOCAL_WIFI_NOT_OPEN",
      [4] = "PEER_WIFI_NOT_OPEN",
      [5] = "PEER_ABILITY_NO_ONCOLLABORATE",
      [6] = "SYSTEM_INTERNAL_ERROR",
    },
    ["DisconnectReason"] = {
      [0] = "UNSPECIFIED",
      [1] = "PEER_APP_CLOSE_COLLABORATION",
      [2] = "PEER_APP_EXIT",
      [3] = "NETWORK_DISCONNECTED",
    },
    ["SessionError"] = {
      [0] = "NONE",
      [1] = "PROTOCOL_ERROR",
      [2] = "LIMIT_EXCEEDED",
      [3] = "INTERNAL_ERROR",
    },
    ["CollaborateEventType"] = {
      [0] = "UNSPECIFIED",
      [1] = "SEND_FAILURE",
      [2] = "COLOR_SPACE_CONVERSION_FAILURE",
    },
  },
  bodies = {
    [1] = "Hello",
    [2] = "LinkClose",
    [3] = "Ping",
    [4] = "Pong",
    [5] = "ConnectRequest",
    [6] = "ConnectResponse",
    [7] = "Message",
    [9] = "Disconnect",
    [10] = "CollaborateEvent",
  },
}
-- END SCHEMA

local acm = Proto("acm", "acm protocol")

local frame_type_names = {}
for code, name in pairs(SCHEMA.enums["FrameType"]) do
  frame_type_names[code] = name
end
frame_type_names[0x7E] = "HANDSHAKE"
frame_type_names[0x7F] = "RECORD"

local f = {
  magic = ProtoField.uint16("acm.magic", "Magic", base.HEX),
  version = ProtoField.uint8("acm.version", "Version"),
  type = ProtoField.uint8("acm.type", "Type", base.HEX, frame_type_names),
  flags = ProtoField.uint8("acm.flags", "Flags", base.HEX),
  flag_first = ProtoField.bool("acm.flags.first", "FIRST", 8, nil, 0x01),
  flag_last = ProtoField.bool("acm.flags.last", "LAST", 8, nil, 0x02),
  flag_more = ProtoField.bool("acm.flags.more", "MORE", 8, nil, 0x01),
  length = ProtoField.uint24("acm.length", "Payload length"),
  channel = ProtoField.uint32("acm.channel", "Channel"),
  unit = ProtoField.string("acm.unit", "Unit"),
  fields = ProtoField.string("acm.fields", "Fields"),
  rule = ProtoField.string("acm.rule", "SPEC rule broken"),
  open_id = ProtoField.string("acm.open.device_id", "Device id"),
  close_code = ProtoField.uint32("acm.close.code", "Close code"),
  close_text = ProtoField.string("acm.close.text", "Close text"),
  binding_kind = ProtoField.uint8("acm.binding.kind", "Binding message kind", base.HEX),
  data_transfer = ProtoField.uint32("acm.data.transfer", "Transfer id"),
  data_index = ProtoField.uint32("acm.data.index", "Fragment index"),
  data_total = ProtoField.uint64("acm.data.total", "Total length"),
  data_offset = ProtoField.uint64("acm.data.offset", "Offset in the transfer"),
  data_bytes = ProtoField.uint32("acm.data.bytes", "Data bytes"),
  data_chunk = ProtoField.bytes("acm.data.chunk", "Data"),
  handshake = ProtoField.uint8("acm.handshake.message", "Handshake message"),
  record = ProtoField.uint64("acm.record.number", "Record number"),
  envelope_body = ProtoField.bytes("acm.envelope.body", "Noise message"),
  piece = ProtoField.uint32("acm.piece", "Piece of a split body"),
  unknown_field = ProtoField.bytes("acm.unknown_field", "Unknown field"),
}

-- One field per message field of the schema: acm.Message.field.
local schema_fields = {}
for message, fields in pairs(SCHEMA.messages) do
  schema_fields[message] = {}
  for _, field in ipairs(fields) do
    local number, name, kind, ty = field[1], field[2], field[3], field[4]
    local abbrev = "acm." .. message .. "." .. name
    local label = message .. "." .. name
    local pf
    if kind == "uint" then
      pf = ProtoField.uint64(abbrev, label)
    elseif kind == "bool" then
      pf = ProtoField.bool(abbrev, label)
    elseif kind == "string" then
      pf = ProtoField.string(abbrev, label)
    elseif kind == "bytes" then
      pf = ProtoField.bytes(abbrev, label)
    elseif kind == "enum" then
      pf = ProtoField.int32(abbrev, label, base.DEC, SCHEMA.enums[ty])
    else
      pf = ProtoField.none(abbrev, label)
    end
    schema_fields[message][number] = pf
    f[abbrev] = pf
  end
end

local proto_fields = {}
for _, pf in pairs(f) do
  proto_fields[#proto_fields + 1] = pf
end
acm.fields = proto_fields

local ef_violation = ProtoExpert.new("acm.violation", "A SPEC rule is broken",
  expert.group.MALFORMED, expert.severity.ERROR)
acm.experts = { ef_violation }

-- Values as `acm proxy` writes them (acm_wire::schema): strings are UTF-8 with each invalid
-- sequence replaced by U+FFFD as Rust's from_utf8_lossy does, `"` and `\` escaped, control
-- characters (C0, DEL, C1) written \u{..}.
local function utf8_char(s, i)
  -- The code point at byte i and the byte after it, or nil and the byte after the longest
  -- invalid prefix.
  local b = s:byte(i)
  if b < 0x80 then
    return b, i + 1
  end
  local need, low, high, cp
  if b >= 0xC2 and b <= 0xDF then
    need, cp = 1, b - 0xC0
  elseif b >= 0xE0 and b <= 0xEF then
    need, cp = 2, b - 0xE0
  elseif b >= 0xF0 and b <= 0xF4 then
    need, cp = 3, b - 0xF0
  else
    return nil, i + 1
  end
  low, high = 0x80, 0xBF
  if b == 0xE0 then low = 0xA0 elseif b == 0xED then high = 0x9F
  elseif b == 0xF0 then low = 0x90 elseif b == 0xF4 then high = 0x8F end
  local j = i + 1
  for _ = 1, need do
    local c = s:byte(j)
    if c == nil or c < low or c > high then
      return nil, j
    end
    cp = cp * 64 + (c - 0x80)
    low, high = 0x80, 0xBF
    j = j + 1
  end
  return cp, j
end

local function quote(s)
  local out = { '"' }
  local i = 1
  while i <= #s do
    local cp, j = utf8_char(s, i)
    if cp == nil then
      out[#out + 1] = "\239\191\189"
    elseif cp == 0x22 then
      out[#out + 1] = '\\"'
    elseif cp == 0x5C then
      out[#out + 1] = "\\\\"
    elseif cp < 0x20 or (cp >= 0x7F and cp <= 0x9F) then
      out[#out + 1] = string.format("\\u{%x}", cp)
    else
      out[#out + 1] = s:sub(i, j - 1)
    end
    i = j
  end
  out[#out + 1] = '"'
  return table.concat(out)
end

local function hex(range)
  if range:len() == 0 then
    return ""
  end
  return string.lower(range:bytes():tohex())
end

-- A protobuf varint at `pos` of `tvb` (ending before `limit`): its value as UInt64 and the
-- position after it, or nil.
local function varint(tvb, pos, limit)
  local value = UInt64(0)
  local shift = 0
  while pos < limit and shift < 70 do
    local b = tvb(pos, 1):uint()
    if shift < 64 then
      value = value:bor(UInt64(b % 128):lshift(shift))
    end
    pos = pos + 1
    if b < 128 then
      return value, pos
    end
    shift = shift + 7
  end
  return nil, pos
end

local function int32_of(value)
  local low = value:band(UInt64(0xFFFFFFFF)):tonumber()
  if low >= 2147483648 then
    low = low - 4294967296
  end
  return low
end

-- Walks a body: adds each field to `tree` and `out` (name, text) pairs; returns an error text or
-- nil. Mirrors acm_wire::schema::fields.
local function walk(tvb, pos, limit, message, prefix, tree, out, depth)
  if depth > 8 then
    return "messages nest too deep"
  end
  local fields = SCHEMA.messages[message] or {}
  while pos < limit do
    if #out >= 512 then
      return "too many fields"
    end
    local start = pos
    local key
    key, pos = varint(tvb, pos, limit)
    if key == nil then
      return "varint past the end of the body"
    end
    local number = key:rshift(3):tonumber()
    local wire_type = key:band(UInt64(7)):tonumber()
    if number == 0 or number > 536870911 then
      return "field number " .. number .. " is not valid"
    end
    local field = nil
    for _, fd in ipairs(fields) do
      if fd[1] == number then
        field = fd
      end
    end
    local name = prefix .. (field and field[2] or ("#" .. number))
    local kind = field and field[3] or nil
    local pf = field and schema_fields[message][number] or f.unknown_field
    if wire_type == 0 then
      local value
      value, pos = varint(tvb, pos, limit)
      if value == nil then
        return "varint past the end of the body"
      end
      local text
      if kind == "bool" then
        text = tostring(value ~= UInt64(0))
        tree:add(pf, tvb(start, pos - start), value ~= UInt64(0))
      elseif kind == "enum" then
        local v = int32_of(value)
        text = SCHEMA.enums[field[4]][v] or tostring(v)
        tree:add(pf, tvb(start, pos - start), v)
      else
        text = tostring(value)
        if field then
          tree:add(pf, tvb(start, pos - start), value)
        else
          tree:add(pf, tvb(start, pos - start))
        end
      end
      out[#out + 1] = { name, text }
    elseif wire_type == 2 then
      local len
      len, pos = varint(tvb, pos, limit)
      if len == nil or len > UInt64(limit - pos) then
        return name .. ": length past the end of the body"
      end
      len = len:tonumber()
      local range = tvb(pos, len)
      if kind == "string" then
        local text = range:raw()
        out[#out + 1] = { name, quote(text) }
        tree:add(pf, tvb(start, pos + len - start), text)
      elseif kind == "message" then
        local sub = tree:add(pf, tvb(start, pos + len - start))
        if len == 0 then
          out[#out + 1] = { name, "{}" }
        else
          local err = walk(tvb, pos, pos + len, field[4], name .. ".", sub, out, depth + 1)
          if err then
            return err
          end
        end
      else
        out[#out + 1] = { name, hex(range) }
        tree:add(pf, range)
      end
      pos = pos + len
    elseif wire_type == 1 or wire_type == 5 then
      local width = wire_type == 1 and 8 or 4
      if limit - pos < width then
        return name .. ": fixed value past the end"
      end
      out[#out + 1] = { name, hex(tvb(pos, width)) }
      tree:add(f.unknown_field, tvb(pos, width))
      pos = pos + width
    else
      return name .. ": wire type " .. wire_type .. " is not supported"
    end
  end
  return nil
end

-- Key logs (SPEC section 17.12): with the preference "Key log file" set, the records of secure
-- links whose keys the file lists are opened, and the frames inside shown as plain ones. The
-- ChaCha20 below decrypts; the Poly1305 tag is not checked (a record whose decryption is not
-- one whole frame is shown as not opened).
acm.prefs.keylog = Pref.string("Key log file", "",
  "A key log (SPEC section 17.12), as implementations write it when ACM_KEYLOGFILE names it")

local band, bxor, bor, lrotate = bit32.band, bit32.bxor, bit32.bor, bit32.lrotate

local function le32(bytes, i)
  return bytes[i] + bytes[i + 1] * 256 + bytes[i + 2] * 65536 + bytes[i + 3] * 16777216
end

-- One 64-byte ChaCha20 block (RFC 8439) of a 32-byte key (a table of byte values), a block
-- counter and a nonce of three 32-bit words, as a table of 64 byte values.
local function chacha_block(key, counter, n0, n1, n2)
  local s = { 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 }
  for i = 0, 7 do
    s[5 + i] = le32(key, 1 + 4 * i)
  end
  s[13], s[14], s[15], s[16] = counter, n0, n1, n2
  local x = {}
  for i = 1, 16 do
    x[i] = s[i]
  end
  local function qr(a, b, c, d)
    x[a] = band(x[a] + x[b], 0xFFFFFFFF); x[d] = lrotate(bxor(x[d], x[a]), 16)
    x[c] = band(x[c] + x[d], 0xFFFFFFFF); x[b] = lrotate(bxor(x[b], x[c]), 12)
    x[a] = band(x[a] + x[b], 0xFFFFFFFF); x[d] = lrotate(bxor(x[d], x[a]), 8)
    x[c] = band(x[c] + x[d], 0xFFFFFFFF); x[b] = lrotate(bxor(x[b], x[c]), 7)
  end
  for _ = 1, 10 do
    qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15); qr(4, 8, 12, 16)
    qr(1, 6, 11, 16); qr(2, 7, 12, 13); qr(3, 8, 9, 14); qr(4, 5, 10, 15)
  end
  local out = {}
  for i = 1, 16 do
    local w = band(x[i] + s[i], 0xFFFFFFFF)
    for k = 0, 3 do
      out[#out + 1] = band(bit32.rshift(w, 8 * k), 0xFF)
    end
  end
  return out
end

-- Noise's ChaChaPoly nonce n: 32 zero bits, then n as 64 bits little-endian.
local function nonce_words(n)
  local low = n % 4294967296
  return 0, low, (n - low) / 4294967296
end

-- `data` (a string) encrypted or decrypted with `key` under Noise nonce `n`, tag left out.
local function chacha_xor(key, n, data)
  local n0, n1, n2 = nonce_words(n)
  local out = {}
  local counter = 1
  for at = 1, #data, 64 do
    local block = chacha_block(key, counter, n0, n1, n2)
    for i = 0, math.min(63, #data - at) do
      out[#out + 1] = string.char(bxor(data:byte(at + i), block[i + 1]))
    end
    counter = counter + 1
  end
  return table.concat(out)
end

-- Noise's Rekey(): the first 32 bytes of the encryption of 32 zero bytes under nonce 2^64 - 1.
local function rekey(key)
  local block = chacha_block(key, 1, 0, 0xFFFFFFFF, 0xFFFFFFFF)
  local out = {}
  for i = 1, 32 do
    out[i] = block[i]
  end
  return out
end

local function key_bytes(hex_text)
  local out = {}
  for i = 1, 64, 2 do
    out[#out + 1] = tonumber(hex_text:sub(i, i + 1), 16)
  end
  return out
end

-- The keys of the link whose dialer ephemeral key is `ephemeral` (hex): dialer's, acceptor's.
local function logged_keys(ephemeral)
  local path = acm.prefs.keylog
  if path == nil or path == "" then
    return nil
  end
  local file = io.open(path, "r")
  if file == nil then
    return nil
  end
  for line in file:lines() do
    local e, k1, k2 = line:match("^ACM_SECURE_V1 (%x+) (%x+) (%x+)%s*$")
    if e == ephemeral and #k1 == 64 and #k2 == 64 then
      file:close()
      return key_bytes(k1), key_bytes(k2)
    end
  end
  file:close()
  return nil
end

-- Record `number` of a direction (its body without the tag), opened with the direction's key,
-- which is moved on through the rekeys of SEC-10; nil without keys.
local function open_record(conv, side, number, body)
  if side.key == nil then
    if conv.ephemeral == nil or (side.key_asked or 0) >= 8 then
      return nil
    end
    side.key_asked = (side.key_asked or 0) + 1
    local dialer_key, acceptor_key = logged_keys(conv.ephemeral)
    if dialer_key == nil then
      return nil
    end
    side.key = side.is_dialer and dialer_key or acceptor_key
    side.key_next = 0
  end
  if number < side.key_next then
    return nil
  end
  while side.key_next < number do
    local boundary = (math.floor(side.key_next / 65536) + 1) * 65536
    if boundary <= number then
      side.key = rekey(side.key)
      side.key_next = boundary
    else
      side.key_next = number
    end
  end
  local frame = chacha_xor(side.key, number, body)
  side.key_next = number + 1
  if side.key_next % 65536 == 0 then
    side.key = rekey(side.key)
  end
  return frame
end

local function raw_to_hex(raw)
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- What the first pass learnt of each connection, per direction, and each unit's results.
local conversations = {}
local results = {}

local function conversation_state(pinfo)
  local a = tostring(pinfo.src) .. ":" .. pinfo.src_port
  local b = tostring(pinfo.dst) .. ":" .. pinfo.dst_port
  local key = a < b and (a .. "|" .. b) or (b .. "|" .. a)
  local conv = conversations[key]
  if conv == nil then
    conv = { handshakes = 0, secure = false, sides = {} }
    conversations[key] = conv
  end
  local side = conv.sides[a]
  if side == nil then
    side = { state = "start", records = 0, hello = false, transfers = {}, last_transfer = {} }
    conv.sides[a] = side
  end
  local other = conv.sides[b]
  if other == nil then
    other = { state = "start", records = 0, hello = false, transfers = {}, last_transfer = {} }
    conv.sides[b] = other
  end
  return conv, side, other
end

local function defined_flags(t)
  if t == 8 then
    return 3
  elseif t >= 5 and t <= 10 then
    return 1
  end
  return 0
end

-- Reads one unit of `len` bytes at `offset`: fills `tree`, returns the unit's name, its fields
-- and its rules. The connection's state moves on only on the first pass (`first_pass`); later
-- passes only rebuild the tree.
local function read_unit(tvb, offset, len, pinfo, tree, first_pass, inner)
  local conv, side, other = conversation_state(pinfo)
  local fields = {}
  local rules = {}
  local function rule(id, text)
    rules[#rules + 1] = { id, text }
  end
  local version = tvb(offset + 2, 1):uint()
  local t = tvb(offset + 3, 1):uint()
  local flags = tvb(offset + 4, 1):uint()
  local length = tvb(offset + 5, 3):uint()
  local channel = tvb(offset + 8, 4):uint()
  local payload = offset + 12
  local limit = offset + len
  tree:add(f.magic, tvb(offset, 2))
  tree:add(f.version, tvb(offset + 2, 1))
  tree:add(f.type, tvb(offset + 3, 1))
  local ft = tree:add(f.flags, tvb(offset + 4, 1))
  tree:add(f.length, tvb(offset + 5, 3))
  tree:add(f.channel, tvb(offset + 8, 4))
  if first_pass and side.state == "closed" then
    rule("TCP-6", "sent after CLOSE; the peer does not read it")
  end
  local name
  if version == 0 then
    tree:add(f.binding_kind, tvb(offset + 3, 1))
    if flags ~= 0 or channel ~= 0 then
      rule("TCP-4", "a binding message's flags and channel must be zero")
    end
    if t == 1 then
      name = "OPEN"
      local id = tvb(payload, length):raw()
      tree:add(f.open_id, tvb(payload, length), id)
      fields[#fields + 1] = { "device_id", quote(id) }
      if length == 0 or length > 64 then
        rule("TCP-4", "an OPEN's device id is 1 to 64 bytes, not " .. length)
      end
      if first_pass then
        if side.state ~= "start" then
          rule("TCP-5", "a second OPEN")
        else
          side.state = "open"
        end
      end
    elseif t == 2 then
      name = "CLOSE"
      if length >= 4 then
        tree:add(f.close_code, tvb(payload, 4))
        fields[#fields + 1] = { "code", tostring(tvb(payload, 4):uint()) }
        local text = length > 4 and tvb(payload + 4, length - 4):raw() or ""
        if length > 4 then
          tree:add(f.close_text, tvb(payload + 4, length - 4), text)
        end
        fields[#fields + 1] = { "text", quote(text) }
        if length > 1028 then
          rule("TCP-4", "a close message of " .. (length - 4) .. " bytes; at most 1024")
        end
      else
        rule("TCP-4", "a CLOSE without its 4-byte code")
      end
      if first_pass then
        if side.state == "start" then
          rule("TCP-5", "the first message on the connection is not OPEN")
        end
        side.state = "closed"
      end
    else
      name = string.format("BINDING 0x%02x", t)
      if first_pass and side.state == "start" then
        rule("TCP-5", "the first message on the connection is not OPEN")
      end
    end
    return name, fields, rules
  end
  if first_pass and side.state == "start" then
    rule("TCP-5", "the first message on the connection is not OPEN")
    side.state = "open"
  end
  if (t == 0x7E or t == 0x7F) and (conv.secure or not side.hello) then
    if version ~= 1 or flags ~= 0 or channel ~= 0 then
      rule(t == 0x7E and "SEC-5" or "SEC-9", "an envelope has version 1, flags 0 and channel 0")
    end
    tree:add(f.envelope_body, tvb(payload, length))
    if t == 0x7E then
      name = "HANDSHAKE"
      conv.secure = true
      conv.handshakes = conv.handshakes + 1
      if first_pass and conv.handshakes == 1 and length >= 32 then
        conv.ephemeral = raw_to_hex(tvb(payload, 32):raw())
        side.is_dialer = true
      end
      tree:add(f.handshake, tvb(offset + 3, 1), conv.handshakes)
      fields[#fields + 1] = { "message", tostring(conv.handshakes) }
      local expected = ({ 64, 96, 96 })[conv.handshakes]
      if expected == nil then
        rule("SEC-5", "a handshake message after the third")
      elseif length ~= expected then
        rule("SEC-5", "handshake message " .. conv.handshakes .. " is " .. expected ..
          " bytes, not " .. length)
      end
    else
      name = "RECORD"
      local number = side.records
      tree:add(f.record, tvb(offset + 3, 1), UInt64(number))
      fields[#fields + 1] = { "number", tostring(number) }
      side.records = side.records + 1
      if not conv.secure then
        rule("SEC-9", "a record before any handshake")
      end
      if first_pass and length >= 16 then
        local frame = open_record(conv, side, number, tvb(payload, length - 16):raw())
        if frame ~= nil then
          return name, fields, rules, { number = number, frame = frame }
        end
      end
    end
    return name, fields, rules
  end
  if conv.secure and not inner then
    rule("SEC-9", "a plain frame on a secure link")
  end
  -- Header checks in the order of SPEC section 3.5.
  local known = SCHEMA.enums["FrameType"][t] ~= nil and t ~= 0
  if known then
    name = SCHEMA.enums["FrameType"][t]
  elseif t >= 0x80 then
    name = string.format("EXTENSION 0x%02x", t)
  else
    name = string.format("UNKNOWN 0x%02x", t)
  end
  if known and defined_flags(t) ~= 0 then
    if t == 8 then
      ft:add(f.flag_first, tvb(offset + 4, 1))
      ft:add(f.flag_last, tvb(offset + 4, 1))
    else
      ft:add(f.flag_more, tvb(offset + 4, 1))
    end
  end
  local max = other.max_frame_size or 16777227
  if 12 + length > max then
    rule("FRAME-5", "frame of " .. (12 + length) .. " bytes exceeds the maximum of " .. max)
  elseif t == 0 then
    rule("FRAME-6", "frame type 0 is reserved")
  elseif not known and t < 0x80 then
    rule("FRAME-7", string.format("unknown critical frame type 0x%02X", t))
  elseif known then
    local defined = defined_flags(t)
    local masked = 0
    for bit = 0, 7 do
      local v = 2 ^ bit
      if flags % (2 * v) >= v and defined % (2 * v) < v then
        masked = masked + v
      end
    end
    local link_frame = t >= 1 and t <= 4
    if masked ~= 0 then
      rule("FRAME-4", string.format("frame type %d has reserved flag bits 0x%02X set", t, masked))
    elseif link_frame ~= (channel == 0) then
      rule("FRAME-8", string.format("frame type %d may not be sent on channel %d", t, channel))
    end
  end
  if not known then
    if first_pass and side.pending then
      rule("FRAME-10", "interrupts the body in progress on channel " .. side.pending.channel)
      side.pending = nil
    end
    return name, fields, rules
  end
  if first_pass and not side.hello and t ~= 1 and t ~= 2 then
    rule("LINK-2", "the first frame of a link is HELLO")
  end
  if t == 8 then
    if first_pass and side.pending then
      rule("FRAME-10", "interrupts the body in progress on channel " .. side.pending.channel)
      side.pending = nil
    end
    local first = flags % 2 == 1
    local last = flags % 4 >= 2
    local needed = first and 16 or 8
    if length < needed then
      rule("DATA-1", "a DATA payload of " .. length .. " bytes is shorter than its " .. needed ..
        "-byte data header")
      return name, fields, rules
    end
    local id = tvb(payload, 4):uint()
    local index = tvb(payload + 4, 4):uint()
    local chunk = length - needed
    tree:add(f.data_transfer, tvb(payload, 4))
    tree:add(f.data_index, tvb(payload + 4, 4))
    fields[#fields + 1] = { "transfer", tostring(id) }
    fields[#fields + 1] = { "index", tostring(index) }
    local key = channel .. "/" .. id
    local offset_in = nil
    if first then
      local total = tvb(payload + 8, 8):uint64()
      tree:add(f.data_total, tvb(payload + 8, 8))
      fields[#fields + 1] = { "total", tostring(total) }
      offset_in = 0
      if index ~= 0 then
        rule("DATA-2", "a FIRST fragment with index " .. index)
      end
      local previous = side.last_transfer[channel]
      if previous ~= nil and id <= previous then
        rule("DATA-3", "transfer id " .. id .. " is not above " .. previous ..
          ", the last one begun")
      end
      side.last_transfer[channel] = id
      if UInt64(chunk) > total then
        rule("DATA-5", chunk .. " bytes in a transfer of " .. tostring(total))
      elseif last and UInt64(chunk) < total then
        rule("DATA-5", "LAST after " .. chunk .. " bytes of a transfer of " .. tostring(total))
      elseif not last then
        side.transfers[key] = { next_index = 1, received = UInt64(chunk), total = total }
      end
    else
      local tr = side.transfers[key]
      if tr == nil then
        rule("DATA-4", "fragment " .. index .. " of transfer " .. id .. ", which is not in progress")
      else
        offset_in = tr.received
        local received = tr.received + UInt64(chunk)
        if index ~= tr.next_index then
          rule("DATA-4", "fragment " .. index .. " where " .. tr.next_index .. " is due")
          side.transfers[key] = nil
        elseif chunk == 0 and not last then
          rule("DATA-4", "an empty fragment that is not LAST")
          side.transfers[key] = nil
        elseif received > tr.total then
          rule("DATA-5", tostring(received) .. " bytes in a transfer of " .. tostring(tr.total))
          side.transfers[key] = nil
        elseif last then
          if received < tr.total then
            rule("DATA-5", "LAST after " .. tostring(received) .. " bytes of " ..
              tostring(tr.total))
          end
          side.transfers[key] = nil
        else
          tr.received = received
          tr.next_index = tr.next_index + 1
        end
      end
    end
    if offset_in ~= nil then
      tree:add(f.data_offset, tvb(payload + 4, 4), UInt64(offset_in))
      fields[#fields + 1] = { "offset", tostring(offset_in) }
    end
    tree:add(f.data_bytes, tvb(payload, needed), chunk)
    fields[#fields + 1] = { "bytes", tostring(chunk) }
    if chunk > 0 then
      tree:add(f.data_chunk, tvb(payload + needed, chunk))
    end
    return name, fields, rules
  end
  local message = SCHEMA.bodies[t]
  if message == nil then
    return name, fields, rules
  end
  -- Split bodies (FRAME-10): the pieces are joined, the body decoded with its last piece.
  local body_tvb, body_pos, body_limit = tvb, payload, limit
  local more = flags % 2 == 1 and t >= 5 and t <= 10
  local joined = nil
  if side.pending then
    if side.pending.type == t and side.pending.channel == channel then
      joined = side.pending
    else
      rule("FRAME-10", "interrupts the body in progress on channel " .. side.pending.channel)
    end
    side.pending = nil
  end
  if more or joined then
    local pending = joined or { type = t, channel = channel, body = ByteArray.new(), pieces = 0 }
    pending.pieces = pending.pieces + 1
    tree:add(f.piece, tvb(offset + 4, 1), pending.pieces)
    fields[#fields + 1] = { "piece", tostring(pending.pieces) }
    if pending.body:len() + length > 262144 then
      rule("FRAME-10", "a split body over 262144 bytes")
      return name, fields, rules
    end
    if length > 0 then
      pending.body:append(tvb(payload, length):bytes())
    end
    if more then
      side.pending = pending
      return name, fields, rules
    end
    if pending.body:len() == 0 then
      return name, fields, rules
    end
    body_tvb = pending.body:tvb("Joined body")
    body_pos, body_limit = 0, pending.body:len()
  end
  local sub = tree:add(acm, body_tvb(body_pos, body_limit - body_pos), message)
  local before = #fields
  local err = walk(body_tvb, body_pos, body_limit, message, "", sub, fields, 0)
  if err then
    -- As `acm proxy` does: a body that does not decode shows the error, not part of its fields.
    for i = #fields, before + 1, -1 do
      fields[i] = nil
    end
    rule("CTRL-1", err)
  end
  if t == 1 and err == nil then
    if side.hello then
      rule("LINK-2", "a second HELLO")
    else
      side.hello = true
      for _, pair in ipairs(fields) do
        if pair[1] == "max_frame_size" then
          local v = tonumber(pair[2])
          v = math.max(128, math.min(v, 16777227))
          side.max_frame_size = v
        end
      end
    end
  end
  return name, fields, rules
end

-- The frame inside an opened record, shown under `subtree`: its name, its fields (after the
-- record's number) and its rules (after the record's own), as `acm proxy` shows them.
local function show_opened(opened, pinfo, subtree, name, fields, rules, first_pass)
  local frame = opened.frame
  if opened.number == 0 then
    fields[#fields + 1] = { "opened", "confirmation" }
    if #frame ~= 0 then
      rules[#rules + 1] = { "SEC-8", "the confirmation (record 0) is not empty" }
    end
    return name, fields, rules
  end
  local whole = #frame >= 12 and frame:byte(1) == 0xAC and frame:byte(2) == 0x4D and
    12 + frame:byte(6) * 65536 + frame:byte(7) * 256 + frame:byte(8) == #frame
  if not whole then
    rules[#rules + 1] = { "SEC-9", "the record does not hold exactly one frame" }
    return name, fields, rules
  end
  local inner_tvb = ByteArray.new(raw_to_hex(frame)):tvb("Decrypted record")
  local inner_tree = subtree:add(acm, inner_tvb(), "Frame in record " .. opened.number)
  local iname, ifields, irules = read_unit(inner_tvb, 0, #frame, pinfo, inner_tree, first_pass,
    true)
  local all_fields = { { "record", tostring(opened.number) } }
  for _, pair in ipairs(ifields) do
    all_fields[#all_fields + 1] = pair
  end
  for _, r in ipairs(irules) do
    rules[#rules + 1] = r
  end
  return iname, all_fields, rules
end

local function show(tvb, pinfo, tree, offset, len, name_override)
  local key = pinfo.number .. ":" .. offset
  local subtree = tree:add(acm, tvb(offset, len))
  local name, fields, rules
  local cached = results[key]
  if name_override then
    name, fields, rules = name_override[1], {}, name_override[2]
  elseif cached then
    -- Later passes rebuild the tree from the bytes; names, fields and rules are the first's.
    pcall(read_unit, tvb, offset, len, pinfo, subtree, false)
    if cached[4] then
      pcall(show_opened, cached[4], pinfo, subtree, "", {}, {}, false)
    end
    name, fields, rules = cached[1], cached[2], cached[3]
  else
    local opened
    name, fields, rules, opened = read_unit(tvb, offset, len, pinfo, subtree, true)
    if opened then
      name, fields, rules = show_opened(opened, pinfo, subtree, name, fields, rules, true)
    end
    results[key] = { name, fields, rules, opened }
  end
  local parts = {}
  for _, pair in ipairs(fields) do
    parts[#parts + 1] = pair[1] .. "=" .. pair[2]
  end
  local text = table.concat(parts, " ")
  subtree:add(f.unit, tvb(offset, len), name)
  subtree:add(f.fields, tvb(offset, len), text)
  subtree:append_text(": " .. name .. (text ~= "" and (" " .. text) or ""))
  for _, r in ipairs(rules) do
    subtree:add(f.rule, tvb(offset, len), r[1])
    subtree:add_proto_expert_info(ef_violation, r[1] .. ": " .. r[2])
  end
  return name
end

local function dissect(tvb, pinfo, tree)
  local total = tvb:len()
  local offset = 0
  local names = {}
  local _, side = conversation_state(pinfo)
  while offset < total do
    local remaining = total - offset
    if side.lost_at == nil and remaining >= 2 and tvb(offset, 2):uint() ~= 0xAC4D then
      if not pinfo.visited then
        side.lost_at = pinfo.number
      end
    end
    if side.lost_at ~= nil and (pinfo.number > side.lost_at or
        (pinfo.number == side.lost_at and tvb(offset, 2):uint() ~= 0xAC4D)) then
      local rules = {}
      if pinfo.number == side.lost_at then
        rules = { { "FRAME-2", string.format("magic %04x is not ac4d; the rest of this direction is not frames",
          tvb(offset, math.min(2, remaining)):uint()) } }
      end
      names[#names + 1] = show(tvb, pinfo, tree, offset, remaining, { "UNFRAMED", rules })
      offset = total
      break
    end
    if remaining < 12 then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
      break
    end
    local len = 12 + tvb(offset + 5, 3):uint()
    if remaining < len then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = len - remaining
      break
    end
    names[#names + 1] = show(tvb, pinfo, tree, offset, len)
    offset = offset + len
  end
  if #names > 0 then
    pinfo.cols.protocol = "ACM"
    pinfo.cols.info = table.concat(names, ", ")
  end
  return offset
end

function acm.dissector(tvb, pinfo, tree)
  return dissect(tvb, pinfo, tree)
end

local function heuristic(tvb, pinfo, tree)
  if tvb:len() < 2 or tvb(0, 2):uint() ~= 0xAC4D then
    return false
  end
  pcall(function() pinfo.conversation = acm end)
  dissect(tvb, pinfo, tree)
  return true
end

function acm.init()
  conversations = {}
  results = {}
end

acm:register_heuristic("tcp", heuristic)
