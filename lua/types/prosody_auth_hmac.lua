---@meta prosody_auth_hmac
-- LuaLS (lua-language-server) annotations for the native module's Lua API (src/lua.rs); no code
-- runs from here. The shims load the library by path, so annotate what they get:
--   ---@type prosody_auth_hmac
--   local native = package.loadlib(path, "luaopen_prosody_auth_hmac")()
-- Conventions: misuse (a wrong argument type) raises an error; an expected refusal (a bad token, a
-- bad configuration value) returns nil, reason. Tokens and OTPs are Lua strings, never numbers (an
-- OTP keeps its leading zeros). `now` is unix time in whole seconds; nil means the system clock.
-- spec/stub_spec.lua checks this file against the real module in both directions; keep each
-- ---@field type free of spaces and each class's annotations on consecutive lines.
-- luacheck: no unused args, no unused secondaries
-- luacheck: ignore 241 (the class tables below are declared for the annotations, never read)

---A refusal reason (`reasons`): what `verify`, `verify_user`, `mint` and `exchange:step` return; the four
---before signed-out are decided by the shims (they have the sessions and the account store), never by the library.
---@alias prosody_auth_hmac.reason
---| "malformed"
---| "bad-signature"
---| "expired"
---| "otp-mismatch"
---| "replayed"
---| "wrong-host"
---| "invalid-authzid"
---| "cache-full"
---| "quota-exceeded"
---| "internal-error"
---| "unclean-restart"
---| "already-authenticated"
---| "bearer-disabled"
---| "too-many-failures"
---| "account-disabled"
---| "signed-out"

---A SASL mechanism the module offers.
---@alias prosody_auth_hmac.mechanism
---| "PLAIN"
---| "X-TOKEN"
---| "SASL-HMAC"
---| "SASL-HMAC-PLUS"

---The native module, as `luaopen_prosody_auth_hmac` returns it.
---@class prosody_auth_hmac
---@field version string The crate's version (Cargo.toml), e.g. "0.2.0".
---@field mechanisms prosody_auth_hmac.mechanism[] Every SASL mechanism offered, in order.
---@field bearer table<string,true> The mechanisms that send the token itself (a bearer credential), by name.
---@field channel_binding table<string,true> The mechanisms that need channel binding (SASL-HMAC-PLUS), by name.
---@field reasons prosody_auth_hmac.reason[] Every refusal reason the module returns.
---@field servers_trouble table<string,true> The refusal reasons that are the server's trouble, not the client's (not charged to its address), by name.
---@field conditions table<string,string> The RFC 6120 SASL condition for each refusal reason.
---@field condition_texts table<string,string> The text sent with a condition, for the conditions that have one.
---@field reason_texts table<string,string> The text sent with a refusal reason, for the reasons that have one: its condition's, but otp-mismatch's own.
---@field defaults prosody_auth_hmac.defaults Every option's default, by prosody.cfg.lua name.
---@field limits prosody_auth_hmac.limits The accepted ranges and choices the shims check or warn about.
---@field options table<string,prosody_auth_hmac.option> Every option the modules read, by prosody.cfg.lua name (src/options.rs).
local prosody_auth_hmac = {}

---Makes a verifier from the options an admin writes in prosody.cfg.lua; raises if `config` is not a table or `host` not a string.
---@param config prosody_auth_hmac.config
---@return prosody_auth_hmac.verifier|nil verifier nil when an option is wrong
---@return string? err The message naming the option at fault (never its value).
function prosody_auth_hmac.verifier(config) end

---Reads a secret file by the module's and the CLI's one rule (the trailing line end is stripped).
---@param path string
---@param server_gid? integer Prosody's group: a file readable by another group is warned about.
---@param configured? string The option's value as written, before it was resolved to `path`: an error never shows one that looks like a secret.
---@return string|nil contents nil when the file cannot be used (missing, unreadable, over 64 KiB)
---@return string? message On success an exposure warning (readable by others or a foreign group) or nil; on failure the error.
function prosody_auth_hmac.read_secret_file(path, server_gid, configured) end

---Failed logins per client address across streams (src/failures.rs): a budget of log lines per address and minute, in a bounded table.
---@param per_minute integer Log lines per address and minute (at least 1; raises otherwise).
---@return prosody_auth_hmac.address_budget
function prosody_auth_hmac.address_budget(per_minute) end

---A client-supplied identity made safe for a log line: escaped (`\u{...}`, `\\`) and cut to 200 bytes.
---@param s string
---@return string
function prosody_auth_hmac.printable(s) end

---`native.defaults`: the core's default for every option, by prosody.cfg.lua name.
---@class prosody_auth_hmac.defaults
---@field otp_digits integer Digits of the OTP (8).
---@field otp_step integer Seconds per OTP step (30).
---@field otp_skew integer Steps either side of the current one accepted (1).
---@field token_nonce_digits integer Digits of the token's nonce (32).
---@field token_replay_cache_size integer Used tokens remembered while valid (1000000).
---@field token_replay_user_quota integer Live replay-cache entries one account may hold (100).
---@field token_max_failures integer Failed token logins one stream may make (5).
---@field token_max_failures_per_address integer Failed token logins from one client address that get a log line in a minute (20).
---@field token_user_exists string Which accounts exist: "seen" (default) or "any".
---@field token_signout boolean Serve the web app's signed sign-out requests (docs/signout.md) (false).
---@field token_mechanisms prosody_auth_hmac.mechanism[] The mechanisms offered unless configured (all).
---@field token_jid_as_sent boolean Accept a signature over the JID as sent, not only the nodeprep'd one (false).
---@field token_allow_weak_secrets boolean Accept a secret shorter than secret_min_bytes (false).
---@field token_allow_long_lifetime boolean Accept a token lifetime over lifetime_max (false).

---`native.options[name]`: what src/options.rs says of one option.
---@class prosody_auth_hmac.option
---@field type string "integer", "boolean", "choice", "mechanisms", "secret" or "path".
---@field verifier boolean Whether `native.verifier` reads it (a key of prosody_auth_hmac.config).
---@field passed boolean Whether mod_auth_hmac passes it to `native.verifier` as configured.

---`native.limits`: `{ min, max }` per numeric option, and the lengths and choices the shims check.
---@class prosody_auth_hmac.limits
---@field otp_digits integer[] `{ min, max }` of otp_digits.
---@field otp_step integer[] `{ min, max }` of otp_step, in seconds.
---@field otp_skew integer[] `{ min, max }` of otp_skew.
---@field token_nonce_digits integer[] `{ min, max }` of token_nonce_digits.
---@field token_max_failures_min integer The least token_max_failures accepted.
---@field token_user_exists string[] The accepted values of token_user_exists.
---@field lifetime_max integer The longest token lifetime, otp_step * (2 * otp_skew + 1) seconds, accepted unless token_allow_long_lifetime.
---@field secret_min_bytes integer The shortest token_secret accepted unless token_allow_weak_secrets.
---@field secret_advised_bytes integer The token_secret length below which the module warns at load.

---The table `native.verifier` takes: prosody.cfg.lua's option names, plus `host`. An unset option takes its default.
---@class prosody_auth_hmac.config
---@field token_secret string|string[] The HMAC secret, or several (the first mints, all verify).
---@field otp_seed string The TOTP seed, base32.
---@field host? string The virtual host: a token for a JID on another host is refused as wrong-host.
---@field otp_digits? integer Digits of the OTP.
---@field otp_step? integer Seconds per OTP step.
---@field otp_skew? integer Steps either side of the current one accepted.
---@field token_replay_cache_size? integer Used tokens remembered while valid.
---@field token_replay_user_quota? integer Live replay-cache entries one account may hold.
---@field token_nonce_digits? integer Digits of the token's nonce.
---@field token_jid_as_sent? boolean Accept a signature over the JID as sent, not only the nodeprep'd one.
---@field token_allow_weak_secrets? boolean Accept a secret shorter than limits.secret_min_bytes.
---@field token_allow_long_lifetime? boolean Accept a token lifetime over limits.lifetime_max.

---What `verifier:replay_state()` and `verifier:seal_replay_state()` return and `verifier:restore_replay_state()` takes.
---@class prosody_auth_hmac.replay_state
---@field format integer The state format (3).
---@field otp_step integer The otp_step the entries were saved under.
---@field otp_skew integer The otp_skew the entries' expiries were set for.
---@field high_water integer The highest OTP step of a used token.
---@field quarantine integer Tokens of OTP steps up to this one are refused (unclean-restart); 0: none.
---@field entries string[] One `"<key hex> <expiry step>"` line per used token still live.
---@field mac string The state's MAC (hex), keyed from the first token secret.

---What `verifier:running_state()` returns: stored while the server runs, so a start can tell a crash.
---@class prosody_auth_hmac.running_state
---@field format integer The state format (3).
---@field running boolean true.

---What `verifier:signout()` returns for storage and `verifier:signed_out_at()` takes: a user's sign-out record, sealed for that user and host.
---@class prosody_auth_hmac.signout_record
---@field format integer The record format (1).
---@field time string The latest sign-out, unix time in decimal.
---@field nonces string The nonces still remembered: 32 digits and a 20-digit time each.
---@field mac string The record's MAC (hex), keyed from the first token secret.

---What `verifier:restore_replay_state()` returns.
---@class prosody_auth_hmac.restart
---@field outcome string "fresh" (nothing stored), "clean" (a clean stop's state taken) or "unclean" (a crash, or a state refused).
---@field taken? integer For "clean": entries taken into the cache.
---@field dropped? integer For "clean": entries already expired.
---@field refused? string Why the stored state was not taken (then the outcome is "unclean").
---@field quarantine_ends? integer While a quarantine runs: the unix time from which tokens minted then log in.

---What `verifier:stats()` returns: the replay cache's use, and the verifier's options as in effect under their prosody.cfg.lua names.
---@class prosody_auth_hmac.stats
---@field replay_entries integer Used tokens in the replay cache now.
---@field secrets integer How many token secrets the verifier holds.
---@field otp_digits integer Digits of the OTP.
---@field otp_step integer Seconds per OTP step.
---@field otp_skew integer Steps either side of the current one accepted.
---@field token_nonce_digits integer Digits of the token's nonce.
---@field token_replay_cache_size integer The replay cache's capacity.
---@field token_replay_user_quota integer Live replay-cache entries one account may hold.
---@field token_jid_as_sent boolean Whether a signature over the JID as sent is accepted.

---A verifier for one host's configuration, a userdata: call its methods with `:` (a `.` call raises); `tostring` shows its settings with every secret as `***`.
---@class prosody_auth_hmac.verifier
local verifier = {}

---Verifies a token for a JID, or for the first of several candidate JIDs it was signed for (signed exactly as given).
---@param token string
---@param jid string|string[]
---@param now? integer
---@return integer|nil step The OTP step of the token; nil when refused.
---@return integer|prosody_auth_hmac.reason which On success the 1-based index of the JID that matched; when refused the reason.
---@return string? clock For "expired": how far off the minting clock was (or that it was used late); for "otp-mismatch": that no step within a day matches.
function verifier:verify(token, jid, now) end

---Verifies a token for a username by the SASL mechanisms' identity rule (as test_password does).
---@param token string
---@param username string
---@param nodeprep fun(s:string):string? Prepares the username; nil refuses it.
---@param now? integer
---@param signed_out? fun(username:string):integer? When the web app signed the user out (unix time), or nil; asked with the nodeprep'd username after the MAC and the OTP window pass. A token of that step or before is refused (signed-out); an error or an answer that is not a whole number refuses it (internal-error).
---@return string|nil username The account's (nodeprep'd) username; nil when refused.
---@return prosody_auth_hmac.reason? reason
---@return string? clock For "expired": how far off the minting clock was (or that it was used late); for "otp-mismatch": that no step within a day matches.
function verifier:verify_user(token, username, nodeprep, now, signed_out) end

---Checks a sign-out request line (docs/signout.md) for this verifier's host; raises for a verifier made without a host.
---@param line string The request body: `v1 TIME NONCE JID MAC`.
---@param now? integer
---@param load fun(username:string):prosody_auth_hmac.signout_record? The user's stored record, or nil; called only for an authentic, timely request (an error it raises is raised).
---@param nodeprep fun(s:string):string? Prosody's nodeprep: a localpart it changes or refuses is malformed.
---@return string|nil username The user signed out (nodeprep'd localpart); nil when refused.
---@return prosody_auth_hmac.signout_record|"malformed"|"wrong-host"|"bad-signature"|"stale"|"replayed" record On success the record to store as it is; when refused the reason.
---@return "stored-record-invalid"? note The loaded record failed its check and counted as "signed out now" (log it as an error).
function verifier:signout(line, now, load, nodeprep) end

---When a user was signed out, by their stored sign-out record.
---@param username string The nodeprep'd username.
---@param record prosody_auth_hmac.signout_record|any|nil What storage holds (nil: nothing).
---@param now? integer
---@return integer|nil time Unix time of the sign-out; nil for no record; `now` for a record that fails its check.
---@return "stored-record-invalid"? note The record failed its check (log it as an error).
function verifier:signed_out_at(username, record, now) end

---Mints a token for a JID on this verifier's host, with the first secret.
---@param jid string
---@param now? integer
---@return string|nil token
---@return prosody_auth_hmac.reason? reason
function verifier:mint(jid, now) end

---Starts one single-use SASL exchange.
---@param mechanism prosody_auth_hmac.mechanism|string
---@return prosody_auth_hmac.exchange|nil exchange nil for a mechanism the module does not offer.
function verifier:exchange(mechanism) end

---The replay cache's live entries as a stop would save them now; changes nothing. Raises on an internal error.
---@return prosody_auth_hmac.replay_state
function verifier:replay_state() end

---What a stop saves: `replay_state()`, and from then on the verifier accepts no token (unclean-restart):
---one accepted later would be missing from the state. Raises on an internal error.
---@return prosody_auth_hmac.replay_state
function verifier:seal_replay_state() end

---The marker to store while the server runs (in place of the saved state).
---@return prosody_auth_hmac.running_state
function verifier:running_state() end

---Whether storage took `running_state()`: after `restore_replay_state()` no token is accepted
---(unclean-restart) until `true` is reported, since a crash would otherwise look like the clean stop before.
---@param stored boolean
function verifier:running_state_stored(stored) end

---Starts from what storage held: nil (nothing), the running marker (the last run crashed), a saved
---state (taken back when its MAC verifies and every value is in range), or anything else (unreadable).
---After a crash, or a state that is refused, tokens that could have been used before are refused
---(unclean-restart) for at most otp_step × (otp_skew + 1) seconds. Never raises for what storage held.
---Token logins wait for `running_state_stored(true)`.
---@param stored prosody_auth_hmac.replay_state|prosody_auth_hmac.running_state|any
---@param now? integer
---@return prosody_auth_hmac.restart
function verifier:restore_replay_state(stored, now) end

---The verifier's settings and replay-cache use.
---@return prosody_auth_hmac.stats
function verifier:stats() end

---One SASL exchange, from `verifier:exchange(mechanism)`.
---@class prosody_auth_hmac.exchange
local exchange = {}

---Feeds the client's next message (nil for none) to the exchange.
---@param message string|nil
---@param nodeprep fun(s:string):string? Prepares the username; nil refuses it.
---@param now? integer
---@param channel_binding? fun(name:string):string? The connection's binding data for tls-exporter, tls-unique or tls-server-end-point, or nil.
---@param signed_out? fun(username:string):integer? As verifier:verify_user's.
---@return "success"|"challenge"|"failure" status
---@return string value The username on success, the data to send on challenge, the reason (prosody_auth_hmac.reason) on failure.
---@return string? additional On success, additional data for the client, if any.
function exchange:step(message, nodeprep, now, channel_binding, signed_out) end

---The JID the client tried to log in as, log-safe (printable), or nil before it is known.
---@return string?
function exchange:attempted_jid() end

---After an "expired" or "otp-mismatch" failure: how far off the minting clock was (or that no step matches), for the log line.
---@return string?
function exchange:clock_diagnosis() end

---The exchange's mechanism name.
---@return prosody_auth_hmac.mechanism
function exchange:mechanism() end

---Failed logins per client address, from `native.address_budget()`.
---@class prosody_auth_hmac.address_budget
local address_budget = {}

---Counts one failed login from `address` (nil: not known).
---@param address string|nil
---@param now? integer
---@return boolean log Write this failure's log line (else it is counted for a summary).
---@return boolean close The address has used up its minute: close the stream now.
function address_budget:record(address, now) end

---The failures not logged, per address, of the minutes over by `now`; each is returned once.
---@param now? integer
---@return [string,integer][]
function address_budget:summaries(now) end

return prosody_auth_hmac
