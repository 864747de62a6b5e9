-- The LuaLS annotation stub (lua/types/prosody_auth_hmac.lua) against the real module, both ways:
-- every export, method, table key and configuration option the module has is declared in the stub
-- with the right Lua type, and everything the stub declares exists. Runs on every interpreter.
local env = require "spec.helpers.env";

local stub_path = env.repo .. "/lua/types/prosody_auth_hmac.lua";

-- The stub's annotations: classes[name] = { fields = { name = type }, optional = { name = true },
-- functions = { name = "." or ":" } }, aliases[name] = { "literal", ... }.
local function parse_stub(text)
	local classes, aliases, owners = {}, {}, {};
	local class, alias;
	local n = 0;
	for line in (text .. "\n"):gmatch("([^\n]*)\n") do
		n = n + 1;
		local where = "line " .. n .. ": " .. line;
		local class_name = line:match("^%-%-%-@class%s+([%w_.]+)");
		local alias_name = line:match("^%-%-%-@alias%s+([%w_.]+)");
		local field, opt, ftype = line:match("^%-%-%-@field%s+([%w_]+)(%??)%s+(%S+)");
		local literal = line:match('^%-%-%-|%s+"([^"]*)"');
		local id = line:match("^local%s+([%w_]+)%s*=%s*{%s*}");
		local owner, sep, fname = line:match("^function%s+([%w_]+)([.:])([%w_]+)%s*%(");
		if class_name then
			assert(not classes[class_name], "class declared twice, " .. where);
			class, alias = { fields = {}, optional = {}, functions = {} }, nil;
			classes[class_name] = class;
		elseif alias_name then
			class, alias = nil, {};
			aliases[alias_name] = alias;
		elseif line:match("^%-%-%-@field") then
			assert(field and class, "a ---@field outside a class, or one this spec cannot read, " .. where);
			assert(class.fields[field] == nil, "field declared twice, " .. where);
			class.fields[field], class.optional[field] = ftype, opt == "?" or nil;
		elseif line:match("^%-%-%-|") then
			assert(literal and alias, "a ---| outside an alias, or one this spec cannot read, " .. where);
			alias[#alias+1] = literal;
		elseif id and class then
			owners[id], class = class, nil;
		elseif owner then
			local of = assert(owners[owner], "a function on a table no ---@class names, " .. where);
			assert(of.functions[fname] == nil and of.fields[fname] == nil, "declared twice, " .. where);
			of.functions[fname] = sep;
		elseif not line:match("^%-%-%-") then
			class, alias = nil, nil; -- a class's annotations are consecutive lines
		end
	end
	return classes, aliases;
end

-- The Lua type a ---@field type stands for (only the forms the stub uses; anything else fails the
-- spec, so the check can never be skipped by a type it does not understand).
local function lua_type(annotation, classes)
	if annotation == "string" or annotation:match('^"[^"]*"$') then return "string"; end
	if annotation == "integer" or annotation == "number" then return "number"; end
	if annotation == "boolean" then return "boolean"; end
	if annotation:match("^fun%(") then return "function"; end
	if annotation:match("%[%]$") or annotation:match("^table") or classes[annotation] then return "table"; end
	error("stub_spec cannot tell the Lua type of ---@field type " .. annotation);
end

local function keys(t)
	local out = {};
	for k in pairs(t) do out[#out+1] = tostring(k); end
	table.sort(out);
	return out;
end

describe("the LuaLS stub lua/types/prosody_auth_hmac.lua", function()
	local native = env.native();
	local doc = env.vectors();
	local text = env.read(stub_path);
	local classes, aliases = parse_stub(text);
	local function class(name)
		return assert(classes[name], "the stub declares no ---@class " .. name);
	end
	local function base_config()
		return { token_secret = doc.secrets, otp_seed = doc.otp_seed, host = doc.host, token_allow_weak_secrets = true };
	end
	local function verifier()
		return assert(native.verifier(base_config()));
	end

	-- a table of the real module against a stub class's fields, both ways, with each value's type
	local function same_fields(real, class_name, what)
		local c = class(class_name);
		assert.is_table(real, what);
		for k, value in pairs(real) do
			local declared = c.fields[k];
			assert.is_string(declared, what .. "." .. tostring(k) .. " exists but is not a ---@field of " .. class_name);
			assert.are.equal(lua_type(declared, classes), type(value),
				what .. "." .. k .. " is a " .. type(value) .. ", the stub says " .. declared);
		end
		for k in pairs(c.fields) do
			assert.is_not_nil(real[k], class_name .. " declares " .. k .. ", which " .. what .. " does not have");
		end
	end

	it("is a LuaLS meta file for the module", function()
		assert.are.equal("---@meta prosody_auth_hmac\n", text:sub(1, #"---@meta prosody_auth_hmac\n"));
		assert.truthy(text:find("\nreturn prosody_auth_hmac%s*$"), "the stub must end by returning the module class");
		local chunk, err = loadfile(stub_path); -- its syntax is every interpreter's, like the shims'
		assert.is_function(chunk, tostring(err));
	end);

	it("declares every export of the module with its type, and nothing else", function()
		local m = class("prosody_auth_hmac");
		for name, value in pairs(native) do
			if type(value) == "function" then
				assert.are.equal(".", m.functions[name],
					"native." .. name .. " is a function the stub does not declare as function prosody_auth_hmac." .. name .. "(...)");
			else
				local declared = m.fields[name];
				assert.is_string(declared, "native." .. name .. " (a " .. type(value) .. ") is not a ---@field of prosody_auth_hmac");
				assert.are.equal(lua_type(declared, classes), type(value),
					"native." .. name .. " is a " .. type(value) .. ", the stub says " .. declared);
			end
		end
		for name in pairs(m.fields) do
			assert.is_not_nil(native[name], "the stub declares a field " .. name .. " the module does not export");
		end
		for name in pairs(m.functions) do
			assert.is_function(native[name], "the stub declares a function " .. name .. " the module does not export");
		end
	end);

	it("declares every method of a verifier, and nothing else", function()
		local c = class("prosody_auth_hmac.verifier");
		local v = verifier();
		assert.are.equal("userdata", type(v));
		-- mlua's UserDataMethods: the methods are its metatable's __index table
		local index = debug.getmetatable(v).__index;
		assert.is_table(index, "a verifier's methods are no longer an __index table: adapt this spec");
		for name, value in pairs(index) do
			assert.is_function(value, "verifier." .. tostring(name));
			assert.are.equal(":", c.functions[name], "verifier:" .. name .. " is not declared in the stub");
		end
		for name, sep in pairs(c.functions) do
			assert.are.equal(":", sep, "verifier methods take self: declare verifier:" .. name);
			assert.is_function(v[name], "the stub declares verifier:" .. name .. ", which a verifier does not have");
		end
		assert.same({}, c.fields);
	end);

	it("declares every method of an exchange, and nothing else", function()
		local c = class("prosody_auth_hmac.exchange");
		local ex = assert(verifier():exchange("PLAIN"));
		assert.are.equal("userdata", type(ex));
		-- mlua's UserDataMethods: the methods are its metatable's __index table
		local index = debug.getmetatable(ex).__index;
		assert.is_table(index, "an exchange's methods are no longer an __index table: adapt this spec");
		for name, value in pairs(index) do
			assert.is_function(value, "exchange." .. tostring(name));
			assert.are.equal(":", c.functions[name], "exchange:" .. name .. " is not declared in the stub");
		end
		for name, sep in pairs(c.functions) do
			assert.are.equal(":", sep, "exchange methods take self: declare exchange:" .. name);
			assert.is_function(ex[name], "the stub declares exchange:" .. name .. ", which an exchange does not have");
		end
		assert.same({}, c.fields);
	end);

	it("declares every method of an address budget, and nothing else", function()
		local c = class("prosody_auth_hmac.address_budget");
		local b = native.address_budget(2);
		assert.are.equal("userdata", type(b));
		local index = debug.getmetatable(b).__index;
		assert.is_table(index, "an address budget's methods are no longer an __index table: adapt this spec");
		for name, value in pairs(index) do
			assert.is_function(value, "address_budget." .. tostring(name));
			assert.are.equal(":", c.functions[name], "address_budget:" .. name .. " is not declared in the stub");
		end
		for name, sep in pairs(c.functions) do
			assert.are.equal(":", sep, "address_budget methods take self: declare address_budget:" .. name);
			assert.is_function(b[name], "the stub declares address_budget:" .. name .. ", which a budget does not have");
		end
		assert.same({}, c.fields);
		-- what the stub says it returns, on an injected clock
		local t = 1700000040;
		assert.same({ true, false }, { b:record("192.0.2.1", t) });
		assert.same({ true, true }, { b:record("192.0.2.1", t) });
		assert.same({ false, true }, { b:record("192.0.2.1", t) });
		assert.same({ true, false }, { b:record(nil, t) });
		assert.same({}, b:summaries(t + 59));
		assert.same({ { "192.0.2.1", 1 } }, b:summaries(t + 60));
		for _, bad in ipairs({ 0, -1, 1.5, "20", false }) do
			assert.is_false(pcall(native.address_budget, bad), tostring(bad));
		end
		assert.is_false(pcall(b.record, b, 42, t), "an address is a string or nil");
	end);

	it("declares every key of native.defaults and native.limits, and nothing else", function()
		same_fields(native.defaults, "prosody_auth_hmac.defaults", "native.defaults");
		same_fields(native.limits, "prosody_auth_hmac.limits", "native.limits");
	end);

	it("declares every key of what stats(), replay_state() and seal_replay_state() return, and nothing else", function()
		local v = verifier();
		assert.is_number(v:verify(v:mint("stub@example.org"), "stub@example.org")); -- one entry to export
		same_fields(v:stats(), "prosody_auth_hmac.stats", "verifier:stats()");
		-- beside the replay cache's use, stats() shows options under their prosody.cfg.lua names
		for k in pairs(v:stats()) do
			if k ~= "replay_entries" and k ~= "secrets" then
				assert.is_table(native.options[k], "verifier:stats()." .. k .. " is no option name");
				assert.is_true(native.options[k].verifier, k);
				assert.is_not_nil(native.defaults[k], k);
			end
		end
		local state = v:replay_state();
		assert.are.equal(1, #state.entries);
		same_fields(state, "prosody_auth_hmac.replay_state", "verifier:replay_state()");
		same_fields(v:seal_replay_state(), "prosody_auth_hmac.replay_state", "verifier:seal_replay_state()");
		same_fields(v:running_state(), "prosody_auth_hmac.running_state", "verifier:running_state()");
		-- restore_replay_state's fields depend on the outcome: each one's keys are declared, with their types
		local c = class("prosody_auth_hmac.restart");
		for _, stored in ipairs({ state, v:running_state(), { mac = "00" }, false }) do
			local start = verifier():restore_replay_state(stored);
			for k, value in pairs(start) do
				local declared = c.fields[k];
				assert.is_string(declared, "restore_replay_state()." .. k .. " is not a ---@field of prosody_auth_hmac.restart");
				assert.are.equal(lua_type(declared:gsub("%?$", ""), classes), type(value), k);
			end
		end
	end);

	it("declares exactly the configuration options native.verifier reads", function()
		local c = class("prosody_auth_hmac.config");
		-- every key the module looks up in the table it is given
		local base, read = base_config(), {};
		local proxy = setmetatable({}, { __index = function(_, k) read[k] = true; return base[k]; end });
		assert.is_not_nil(native.verifier(proxy), "a valid configuration read through a proxy");
		for k in pairs(read) do
			assert.is_string(c.fields[k], "native.verifier reads " .. tostring(k) .. ", which prosody_auth_hmac.config does not declare");
		end
		for k in pairs(c.fields) do
			assert.truthy(read[k], "prosody_auth_hmac.config declares " .. k .. ", which native.verifier never reads");
		end
		assert.are.equal(#keys(read), #keys(c.fields));
		-- and each one is checked: a wrong type is refused (or raises) with the option's name
		for k in pairs(c.fields) do
			local cfg = base_config();
			cfg[k] = { false }; -- no option takes a table of booleans
			local ok, v, err = pcall(native.verifier, cfg);
			local message = ok and err or v;
			assert.is_true(not ok or v == nil, k .. " = { false } was accepted");
			assert.truthy(tostring(message):find(k, 1, true), k .. ": " .. tostring(message));
		end
		-- the two options without a default are the ones the stub does not mark optional
		for _, k in ipairs({ "token_secret", "otp_seed" }) do
			assert.is_nil(c.optional[k], k .. " has no default: not optional");
			local cfg = base_config();
			cfg[k] = nil;
			local v, err = native.verifier(cfg);
			assert.is_nil(v);
			assert.truthy(err:find(k, 1, true), err);
		end
	end);

	it("declares the options of src/options.rs where each belongs, and no other", function()
		-- native.options is the table every consumer follows: the config class holds exactly the
		-- options native.verifier reads (plus host), typed as the table says
		local config, defaults = class("prosody_auth_hmac.config"), class("prosody_auth_hmac.defaults");
		local stub_type = { integer = "integer", boolean = "boolean" };
		for name, o in pairs(native.options) do
			same_fields(o, "prosody_auth_hmac.option", "native.options." .. name);
			if o.verifier then
				assert.is_string(config.fields[name], "native.verifier reads " .. name .. ": declare it in prosody_auth_hmac.config");
				if stub_type[o.type] then
					assert.are.equal(stub_type[o.type], config.fields[name], name);
					assert.is_true(config.optional[name], name .. " has a default: optional");
				end
			else
				assert.is_nil(config.fields[name], name .. " is not read by native.verifier");
			end
			if defaults.fields[name] and stub_type[o.type] then
				assert.are.equal(stub_type[o.type], defaults.fields[name], "defaults." .. name);
			end
		end
		for name in pairs(config.fields) do
			if name ~= "host" then
				assert.is_table(native.options[name], "the stub's config declares " .. name .. ", which src/options.rs does not list");
			end
		end
		for name in pairs(native.defaults) do
			assert.is_table(native.options[name], "native.defaults." .. name .. " is no option of src/options.rs");
		end
	end);

	it("lists every mechanism and refusal reason in its aliases, and nothing else", function()
		local function set(list) local s = {}; for _, x in ipairs(list) do s[x] = true; end return s; end
		assert.same(set(native.mechanisms), set(assert(aliases["prosody_auth_hmac.mechanism"], "no mechanism alias")));
		assert.same(set(native.reasons), set(assert(aliases["prosody_auth_hmac.reason"], "no reason alias")));
		assert.are.equal(#native.reasons, #aliases["prosody_auth_hmac.reason"]);
		assert.are.equal(#native.mechanisms, #aliases["prosody_auth_hmac.mechanism"]);
	end);
end);
