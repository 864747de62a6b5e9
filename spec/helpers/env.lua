-- Shared set-up for the specs: Prosody's own util.* modules on the path, the native library, the
-- cross-language vectors, and a module environment like the one Prosody gives a plugin.
local M = {};

-- absolute: the shims resolve relative paths against the config directory, not the working one
local repo = os.getenv("REPO_ROOT") or os.getenv("PWD") or ".";
M.repo = repo;
-- build/lua5.1 .. build/lua5.4, or build/luajit: the native module is built once per interpreter.
M.flavour = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"));
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;
-- Prosody 13's util.* require each other as "prosody.util.*": its loader maps those names, as its
-- launcher does (`pcall(require, "loader")`); 0.12 has no loader.
pcall(require, "loader");

M.library_path = os.getenv("AUTH_HMAC_LIBRARY") or (repo .. "/build/" .. M.flavour .. "/prosody_auth_hmac.so");

function M.native()
	local open = assert(package.loadlib(M.library_path, "luaopen_prosody_auth_hmac"));
	return open();
end

function M.read(path)
	local f = assert(io.open(path, "rb"));
	local s = f:read("*a");
	f:close();
	return s;
end

function M.vectors()
	-- dkjson (lua-dkjson) is pure Lua and installed for every interpreter; Prosody's util.json is not.
	local json = require "dkjson";
	return assert(json.decode(M.read(repo .. "/tests/vectors/tokens.json")));
end

-- Loads a plugin file into a fresh environment with a `module` object. `options` are its
-- configuration; `deps` maps module names to already-loaded environments for module:depends();
-- `stores` (optional) is the storage to share with an earlier load, as across a restart;
-- `stores.fail_writes = { [store_name] = true }` makes that store's writes fail, `stores.fail_reads`
-- its reads.
M.shared = {};

function M.load_module(name, host, options, deps, stores)
	local set = require "util.set";
	local logs, events, provided = {}, {}, {};
	stores = stores or {};
	local module = { host = host, name = name, path = repo .. "/lua/mod_" .. name .. ".lua" };
	local function opt(key, default)
		local v = options[key];
		if v == nil then return default; end
		return v;
	end
	function module:get_option(key, default) return opt(key, default); end
	function module:get_option_string(key, default)
		local v = opt(key, default);
		if v == nil then return nil; end
		return tostring(v);
	end
	function module:get_option_number(key, default) return tonumber(opt(key, default)); end
	function module:get_option_boolean(key, default) return opt(key, default) == true; end
	function module:get_option_set(key, default) return set.new(opt(key, default) or {}); end
	module.get_option_inherited_set = module.get_option_set;
	local global_hooks = {};
	function module:hook_global(event, handler) global_hooks[event] = handler; end
	local hooks = {};
	function module:hook(event, handler, priority) hooks[event] = { handler = handler, priority = priority or 0 }; end
	local wrappers = {};
	function module:wrap_event(event, wrapper) wrappers[event] = wrapper; end
	function module:log(level, fmt, ...) logs[#logs+1] = { level = level, text = fmt:format(...) }; end
	function module:fire_event(event, data) events[#events+1] = { name = event, data = data }; end
	local timers = {};
	function module:add_timer(_, f) timers[#timers+1] = f; end
	function module:provides(kind, item) provided[kind] = item; end
	-- module:shared(path): one table per path, shared by every module this helper loads
	function module:shared(path)
		M.shared[path] = M.shared[path] or {};
		return M.shared[path];
	end
	local metrics = {};
	function module:metric(kind, metric_name)
		local family = { kind = kind, values = {} };
		metrics[metric_name] = family;
		function family.with_labels(_, ...)
			local key = table.concat({ ... }, "/");
			return { add = function(_, n) family.values[key] = (family.values[key] or 0) + n; end };
		end
		return family;
	end
	function module:depends(dep)
		return assert(deps and deps[dep], "dependency not loaded: " .. dep);
	end
	function module:open_store(store_name)
		local data = stores[store_name] or {};
		stores[store_name] = data;
		return {
			get = function(_, key)
				if stores.fail_reads and stores.fail_reads[store_name] then return nil, "injected read failure"; end
				return data[key];
			end;
			set = function(_, key, value)
				-- `stores.fail_writes[store_name]`: the back end refuses writes (a full disk, a lost database)
				if stores.fail_writes and stores.fail_writes[store_name] then return nil, "injected write failure"; end
				data[key] = value;
				return true;
			end;
			users = function() return next, data, nil; end;
		};
	end
	local env = setmetatable({ module = module, prosody = { paths = { config = options.config_dir or "/nonexistent-config-dir" } } },
		{ __index = _G });
	local chunk = assert(loadfile(module.path, "t", env));
	chunk();
	return env, { logs = logs, events = events, provided = provided, stores = stores, metrics = metrics,
		global_hooks = global_hooks, hooks = hooks, wrappers = wrappers, timers = timers };
end

-- Fires `event` at a loaded module's hook or wrapper for it, as Prosody would, with `handler`
-- standing for the other modules' handlers (e.g. mod_legacyauth's at priority 0).
function M.fire(seen, name, event, handler)
	if seen.wrappers[name] then
		return seen.wrappers[name](function(_, e) return handler(e); end, name, event);
	end
	local hook = seen.hooks[name];
	if hook and hook.priority > 0 then
		local ret = hook.handler(event);
		if ret ~= nil then return ret; end
		return handler(event);
	end
	local ret = handler(event);
	if ret ~= nil then return ret; end
	return hook and hook.handler(event);
end

-- Debian builds Prosody's C utilities (util.encodings, util.hashes, ...) for Lua 5.4 only. Specs that
-- load the shims or drive Prosody's util.sasl are tagged #prosody and need them; on the other
-- interpreters scripts/test.sh runs busted with --exclude-tags=prosody.
local has_encodings, encodings = pcall(require, "util.encodings");
M.nodeprep = has_encodings and encodings.stringprep.nodeprep or nil;

return M;
