//! The Lua binding: converts types between Lua and the core, nothing more.
//!
//! ```lua
//! local native = package.loadlib(path, "luaopen_prosody_auth_hmac")()
//! local v, err = native.verifier{ token_secret = {...}, otp_seed = "...", host = "example.org",
//!                                  otp_digits = 8, otp_step = 30, otp_skew = 1,
//!                                  token_replay_cache_size = 1000000, token_nonce_digits = 32,
//!                                  token_jid_as_sent = false }
//! v:verify(token, jid_or_jids, now)   --> step | nil, reason[, clock diagnosis for "expired", "otp-mismatch"]
//!                                         (JIDs signed exactly as given)
//! v:verify_user(token, username, nodeprep, now[, signed_out])
//!                                     --> username | nil, reason[, clock diagnosis]
//!                                     (the SASL mechanisms' identity rule, for test_password)
//!                                     signed_out: function(username) --> unix time the user was
//!                                     signed out, or nil (docs/signout.md); an error or an answer
//!                                     that is not a whole number refuses the login (internal-error)
//! v:signout(line, now, load, nodeprep) --> username, record, note | nil, reason
//!                                     (docs/signout.md; load(username) --> the stored record or nil,
//!                                     called only for an authentic, timely request; record: the table
//!                                     to store; note: nil or "stored-record-invalid")
//! v:signed_out_at(username, record, now) --> unix time | nil, note (nil record: nil)
//! v:replay_state()                    --> { format = 3, otp_step = s, otp_skew = n, high_water = step, quarantine = step,
//!                                           entries = { "<key hex> <expiry>", ... }, mac = "<hex>" }
//!                                     (changes nothing)
//! v:seal_replay_state()               --> the same, for a stop: from then on no token is accepted
//! v:running_state()                   --> { format = 3, running = true }: stored while the server runs
//! v:running_state_stored(ok)           --> nothing: whether storage took running_state(); after
//!                                         restore_replay_state no token is accepted until it did
//! v:restore_replay_state(stored[, now]) --> { outcome = "fresh" | "clean" | "unclean", taken, dropped,
//!                                           refused = why the saved state was not taken,
//!                                           quarantine_ends = unix time }
//! v:stats()                           --> { replay_entries = n, secrets = n, otp_digits = n, otp_step = s, ... }:
//!                                         the options in effect by their prosody.cfg.lua names
//! ex:clock_diagnosis()                --> after an "expired" or "otp-mismatch" failure, how far off the
//!                                         minting clock was (or that no step matches)
//! native.options, native.defaults, native.limits --> by option name (src/options.rs' table)
//! local b = native.address_budget(per_minute) --> failed logins per client address (src/failures.rs)
//! b:record(address_or_nil, now)       --> log (write the line?), close (close the stream now?)
//! b:summaries(now)                    --> { { address, not_logged }, ... } of the minutes over
//! v:mint(jid, now)                    --> token | nil, reason
//! local ex = v:exchange("PLAIN")      --> exchange | nil (unknown mechanism)
//! ex:step(message, nodeprep, now[, channel_binding[, signed_out]])
//!                                     --> "success", username[, additional data]
//!                                     --> "challenge", data | "failure", reason
//! ```
//! The verifier, the exchange and the address budget are userdata: their methods are called with
//! `:` (a verifier method called with `.` raises, saying so). Wrong argument types raise. Expected
//! failures (a bad token, a bad configuration value) return `nil, reason`. Tokens and OTPs are only
//! ever taken as Lua strings, never numbers.

use std::sync::Arc;

use mlua::prelude::*;
use mlua::{FromLuaMulti, IntoLuaMulti, UserData, UserDataMethods, Value};

use crate::error::{condition_text, Reject};
use crate::identity::verify_username_signed_out;
use crate::replay_state::{Field, Held, Source, Start, StateRecord};
use crate::sasl::{Exchange, Mechanism, Outcome};
use crate::secret::SecretBytes;
use crate::signout::StoredRecord;
use crate::totp::decode_seed;
use crate::verifier::{LookupFailed, Settings, Verifier};

fn type_error(what: &str, expected: &str, got: &Value) -> LuaError {
    LuaError::runtime(format!("bad argument '{what}' ({expected} expected, got {})", got.type_name()))
}

/// A Lua string argument (numbers are refused: an OTP must keep its leading zeros).
fn string_arg(what: &str, v: &Value) -> LuaResult<LuaString> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(type_error(what, "string", other)),
    }
}

/// Unix time: an explicit non-negative integer, or the system clock when nil.
fn time_arg(v: &Option<Value>) -> LuaResult<u64> {
    match v {
        None | Some(Value::Nil) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| LuaError::runtime("system clock is before 1970")),
        Some(Value::Integer(i)) => u64::try_from(*i).map_err(|_| LuaError::runtime("bad argument 'now' (negative time)")),
        Some(Value::Number(n)) if n.is_finite() && *n >= 0.0 && n.fract() == 0.0 && *n < 1.8e19 => Ok(*n as u64),
        Some(other) => Err(type_error("now", "non-negative integer", other)),
    }
}

/// A whole non-negative number as Lua gives it (an integer, or an exact float on Lua 5.1).
fn whole(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        Value::Number(n) if n.is_finite() && *n >= 0.0 && n.fract() == 0.0 && *n < 1.8e19 => Some(*n as u64),
        _ => None,
    }
}

/// The `signed_out` argument: nil (nobody is signed out) or `function(username)` returning the
/// unix time the user was signed out, or nil. Anything else it answers, and any error it raises,
/// is a failed lookup: the login fails closed.
fn signed_out_arg(v: Option<Value>) -> LuaResult<Option<LuaFunction>> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Function(f)) => Ok(Some(f)),
        Some(other) => Err(type_error("signed_out", "function", &other)),
    }
}

fn lookup(f: &Option<LuaFunction>, username: &str) -> Result<Option<u64>, LookupFailed> {
    let Some(f) = f else { return Ok(None) };
    match f.call::<Value>(username) {
        Ok(Value::Nil) => Ok(None),
        Ok(v) => whole(&v).map(Some).ok_or(LookupFailed),
        Err(_) => Err(LookupFailed),
    }
}

/// A stored sign-out record as the core reads it: nil is none; a table is read field by field
/// (raw, each string bounded before it is copied); anything else is unreadable.
fn stored_signout(v: &Value) -> LuaResult<Option<StoredRecord>> {
    match v {
        Value::Nil => Ok(None),
        Value::Table(t) => StoredRecord::read(|name, longest| Ok(field(&t.raw_get(name)?, longest))).map(Some),
        _ => Ok(Some(StoredRecord::UNREADABLE)),
    }
}

/// A sign-out record as a Lua table of strings and integers.
fn signout_table(lua: &Lua, record: &StoredRecord) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    for (name, f) in record.fields() {
        t.raw_set(name, field_value(lua, f)?)?;
    }
    Ok(t)
}

/// An option's value as `crate::options` reads it: `None` when unset; whole numbers only when
/// non-negative and exact.
fn option_value(v: Value) -> Option<crate::options::Value> {
    use crate::options::Value as O;
    Some(match v {
        Value::Nil => return None,
        Value::Integer(i) if i >= 0 => O::Integer(i as u64),
        Value::Number(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => O::Integer(n as u64),
        Value::Boolean(b) => O::Boolean(b),
        _ => O::Other,
    })
}

/// An option's value for Lua.
fn option_lua(value: crate::options::Value) -> Value {
    use crate::options::Value as O;
    match value {
        O::Integer(n) => mlua::Integer::try_from(n).map_or(Value::Number(n as f64), Value::Integer),
        O::Boolean(b) => Value::Boolean(b),
        O::Other => Value::Nil,
    }
}

/// The numeric and boolean options (`crate::options::OPTIONS` says which), with the core's defaults
/// for those not set.
fn settings_from(cfg: &LuaTable) -> Result<Settings, String> {
    use crate::options::OptionError;
    crate::options::settings_from(|o| cfg.get::<Value>(o.name).map(option_value).map_err(|e| format!("{}: {e}", o.name))).map_err(
        |e| match e {
            OptionError::Read(m) | OptionError::Kind(m) => m,
        },
    )
}

fn fail(lua: &Lua, reason: &str) -> LuaResult<LuaMultiValue> {
    (Value::Nil, lua.create_string(reason)?).into_lua_multi(lua)
}

/// `native.verifier(config)`: the configuration table uses the option names an admin writes in
/// prosody.cfg.lua (those `crate::options::OPTIONS` says the verifier reads: `token_secret`,
/// `otp_seed` and the numeric and boolean ones) plus `host`. Returns the verifier, or
/// `nil, message` naming the option at fault (never its value).
fn new_verifier(lua: &Lua, cfg: Value) -> LuaResult<LuaMultiValue> {
    let Value::Table(cfg) = cfg else { return Err(type_error("config", "table", &cfg)) };
    let secrets = match cfg.get::<Value>("token_secret")? {
        Value::Table(t) => {
            let mut out = Vec::new();
            for v in t.sequence_values::<Value>() {
                match v? {
                    Value::String(s) => out.push(SecretBytes::new(s.as_bytes().to_vec())),
                    _ => return fail(lua, "token_secret must be a string or a list of strings"),
                }
            }
            out
        }
        Value::String(s) => vec![SecretBytes::new(s.as_bytes().to_vec())],
        Value::Nil => vec![],
        _ => return fail(lua, "token_secret must be a string or a list of strings"),
    };
    let seed = match cfg.get::<Value>("otp_seed")? {
        Value::Nil => Err(crate::ConfigError::MissingSeed),
        Value::String(s) => s.to_str().map_err(|_| crate::ConfigError::SeedNotBase32).and_then(|s| decode_seed(&s)),
        _ => return fail(lua, "otp_seed must be a string"),
    };
    let host = match cfg.get::<Value>("host")? {
        Value::Nil => None,
        v => Some(string_arg("host", &v)?.to_str()?.to_owned()),
    };
    let settings = match settings_from(&cfg) {
        Ok(s) => s,
        Err(m) => return fail(lua, &m),
    };
    match seed.and_then(|seed| Verifier::new(secrets, seed, settings, host.as_deref())) {
        Ok(v) => LuaVerifier(Arc::new(v)).into_lua_multi(lua),
        Err(e) => fail(lua, &e.to_string()),
    }
}

/// The verifier object Lua sees: `UserData` over one shared [`Verifier`] (an exchange it starts
/// holds the same `Arc`, so it outlives the object). `tostring` shows the settings with every
/// secret as `***`.
struct LuaVerifier(Arc<Verifier>);

/// The error for a method called with a `self` that is not a verifier: nearly always `v.verify(...)`
/// for `v:verify(...)`. mlua's own says "bad argument `self` to `LuaVerifier.verify`: error
/// converting Lua string to userdata", naming a Rust type and not the fix.
fn not_a_verifier(method: &str, got: &Value) -> LuaError {
    LuaError::runtime(format!(
        "verifier:{method} called with a {} as self: call it as a method, v:{method}(...), not v.{method}(...)",
        got.type_name()
    ))
}

/// Adds a verifier method: `f(lua, verifier, arguments)`, its `self` checked for a verifier first
/// with [`not_a_verifier`]'s error.
fn add_verifier_method<M, A, R, F>(methods: &mut M, name: &'static str, f: F)
where
    M: UserDataMethods<LuaVerifier>,
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, &Arc<Verifier>, A) -> LuaResult<R> + mlua::MaybeSend + 'static,
{
    methods.add_function(name, move |lua, (this, args): (Value, A)| {
        let Value::UserData(ud) = &this else { return Err(not_a_verifier(name, &this)) };
        // scoped: no reference of its own to the userdata, as mlua's add_method borrows
        ud.borrow_scoped::<LuaVerifier, _>(|v| f(lua, &v.0, args)).map_err(|_| not_a_verifier(name, &this))?
    });
}

impl UserData for LuaVerifier {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        add_verifier_method(methods, "verify", |lua, this, (token, jids, now): (Value, Value, Option<Value>)| {
            let token = string_arg("token", &token)?;
            let now = time_arg(&now)?;
            let token = token.as_bytes();
            let result = match &jids {
                Value::String(s) => match s.to_str() {
                    Ok(jid) => this.verify(&token, &[&jid], now),
                    Err(_) => Err(Reject::Malformed),
                },
                Value::Table(t) => {
                    let strings = t
                        .sequence_values::<Value>()
                        .map(|v| v.and_then(|v| string_arg("jids[]", &v)))
                        .collect::<LuaResult<Vec<_>>>()?;
                    match strings.iter().map(|s| s.to_str()).collect::<Result<Vec<_>, _>>() {
                        Ok(borrowed) => {
                            let refs: Vec<&str> = borrowed.iter().map(|b| &**b).collect();
                            this.verify(&token, &refs, now)
                        }
                        Err(_) => Err(Reject::Malformed),
                    }
                }
                other => return Err(type_error("jid", "string or table", other)),
            };
            Ok(match result {
                Ok(acc) => (Some(acc.step()), Value::Integer((acc.jid_index() + 1) as mlua::Integer), Value::Nil),
                Err(r) => {
                    let detail = match this.explain(r, &token, now) {
                        Some(d) => Value::String(lua.create_string(d.to_string())?),
                        None => Value::Nil,
                    };
                    (None, Value::String(lua.create_string(r.as_str())?), detail)
                }
            })
        });
        add_verifier_method(methods, "mint", |lua, this, (jid, now): (Value, Option<Value>)| {
            let jid = string_arg("jid", &jid)?;
            let now = time_arg(&now)?;
            let Ok(jid) = jid.to_str() else { return fail(lua, Reject::Malformed.as_str()) };
            match this.mint(&jid, now) {
                Ok(t) => t.into_lua_multi(lua),
                Err(r) => fail(lua, r.as_str()),
            }
        });
        add_verifier_method(
            methods,
            "verify_user",
            |lua, this, (token, username, nodeprep, now, signed_out): (Value, Value, Value, Option<Value>, Option<Value>)| {
                let token = string_arg("token", &token)?;
                let username = string_arg("username", &username)?;
                let Value::Function(nodeprep) = nodeprep else { return Err(type_error("nodeprep", "function", &nodeprep)) };
                let now = time_arg(&now)?;
                let signed_out = signed_out_arg(signed_out)?;
                let prep = |s: &str| -> Option<String> { nodeprep.call::<Option<String>>(s).ok().flatten() };
                let Ok(username) = username.to_str() else { return fail(lua, Reject::Malformed.as_str()) };
                let signed_out = |user: &str| lookup(&signed_out, user);
                match verify_username_signed_out(this, &token.as_bytes(), &username, &prep, now, &signed_out) {
                    Ok((user, _)) => user.into_lua_multi(lua),
                    Err(r) => match this.explain(r, &token.as_bytes(), now) {
                        Some(d) => (Value::Nil, r.as_str(), d.to_string()).into_lua_multi(lua),
                        None => fail(lua, r.as_str()),
                    },
                }
            },
        );
        add_verifier_method(
            methods,
            "signout",
            |lua, this, (line, now, load, nodeprep): (Value, Option<Value>, Value, Value)| {
                let line = string_arg("line", &line)?;
                let now = time_arg(&now)?;
                let Value::Function(load) = load else { return Err(type_error("load", "function", &load)) };
                let Value::Function(nodeprep) = nodeprep else { return Err(type_error("nodeprep", "function", &nodeprep)) };
                if this.host().is_none() {
                    return Err(LuaError::runtime("verifier:signout needs a verifier made with a host"));
                }
                let prep = |s: &str| -> Option<String> { nodeprep.call::<Option<String>>(s).ok().flatten() };
                let load = |user: &str| stored_signout(&load.call::<Value>(user)?);
                match this.sign_out(&line.as_bytes(), now, &prep, load)? {
                    Ok(done) => {
                        (done.username, signout_table(lua, &done.record)?, done.note.map(|n| n.as_str())).into_lua_multi(lua)
                    }
                    Err(r) => fail(lua, r.as_str()),
                }
            },
        );
        add_verifier_method(methods, "signed_out_at", |lua, this, (username, record, now): (Value, Value, Option<Value>)| {
            let username = string_arg("username", &username)?;
            let now = time_arg(&now)?;
            let stored = stored_signout(&record)?;
            // a name that is not UTF-8 has no account, so its record cannot be its own
            let username = username.to_str().map(|u| u.to_owned()).unwrap_or_default();
            let (at, note) = this.signed_out_at(&username, stored.as_ref(), now);
            let at = match at {
                Some(t) => mlua::Integer::try_from(t).map_or(Value::Number(t as f64), Value::Integer),
                None => Value::Nil,
            };
            (at, note.map(|n| n.as_str())).into_lua_multi(lua)
        });
        add_verifier_method(methods, "replay_state", |lua, this, ()| {
            let (state, mac) = this.saved_replay_state().map_err(|r| LuaError::runtime(r.as_str()))?;
            record_table(lua, &StateRecord::saved(&state, &mac))
        });
        add_verifier_method(methods, "seal_replay_state", |lua, this, ()| {
            let (state, mac) = this.seal_replay_state().map_err(|r| LuaError::runtime(r.as_str()))?;
            record_table(lua, &StateRecord::saved(&state, &mac))
        });
        add_verifier_method(methods, "running_state", |lua, _, ()| record_table(lua, &StateRecord::running()));
        add_verifier_method(methods, "running_state_stored", |_, this, stored: Value| match stored {
            Value::Boolean(b) => {
                this.running_marker_stored(b);
                Ok(())
            }
            other => Err(type_error("stored", "boolean", &other)),
        });
        add_verifier_method(methods, "restore_replay_state", |lua, this, (saved, now): (Value, Option<Value>)| {
            let now = time_arg(&now)?;
            let start = this.restore(held(&saved), now)?.map_err(|r| LuaError::runtime(r.as_str()))?;
            let t = lua.create_table()?;
            match start {
                Start::Fresh => t.set("outcome", "fresh")?,
                Start::Clean { taken, dropped } => {
                    t.set("outcome", "clean")?;
                    t.set("taken", taken)?;
                    t.set("dropped", dropped)?;
                }
                Start::Unclean { refused, .. } => {
                    t.set("outcome", "unclean")?;
                    t.set("refused", refused.map(|r| r.to_string()))?;
                }
            }
            t.set("quarantine_ends", this.quarantine_ends(now))?;
            Ok(t)
        });
        add_verifier_method(methods, "stats", |lua, this, ()| {
            let t = lua.create_table()?;
            t.set("replay_entries", this.replay_stats().0)?;
            t.set("secrets", this.secret_count())?;
            for (name, value) in this.options_in_effect() {
                t.set(name, option_lua(value))?;
            }
            Ok(t)
        });
        add_verifier_method(methods, "exchange", |lua, this, mech: Value| {
            let mech = string_arg("mechanism", &mech)?;
            match mech.to_str().ok().and_then(|m| Mechanism::from_name(&m)) {
                Some(m) => LuaExchange { verifier: this.clone(), exchange: Exchange::new(m) }.into_lua_multi(lua),
                None => Value::Nil.into_lua_multi(lua),
            }
        });
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| Ok(format!("{:?}", this.0)));
    }

    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field(mlua::MetaMethod::Type, "prosody_auth_hmac.verifier");
    }
}

/// A stored-state record as a Lua table (absent fields left out).
fn record_table(lua: &Lua, record: &StateRecord) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    for (name, field) in record.fields() {
        t.raw_set(name, field_value(lua, field)?)?;
    }
    Ok(t)
}

fn field_value(lua: &Lua, field: &Field) -> LuaResult<Value> {
    Ok(match field {
        Field::Absent | Field::Table | Field::Other => Value::Nil,
        // past Lua's integers (no step is): a float, which reading it back refuses
        Field::Integer(n) => mlua::Integer::try_from(*n).map_or(Value::Number(*n as f64), Value::Integer),
        Field::Float(f) => Value::Number(*f),
        Field::Text(bytes) => Value::String(lua.create_string(bytes)?),
        Field::Boolean(b) => Value::Boolean(*b),
        Field::List(items) => {
            Value::Table(lua.create_sequence_from(items.iter().map(|i| field_value(lua, i)).collect::<LuaResult<Vec<_>>>()?)?)
        }
    })
}

/// What storage held, as the core reads it ([`Held`]): storage is data, so nothing it holds raises.
fn held(saved: &Value) -> Held<StoredTable> {
    match saved {
        Value::Nil => Held::Nothing,
        Value::Table(t) => Held::Record(StoredTable { record: t.clone(), list: None }),
        _ => Held::Other,
    }
}

/// A stored record's table, read (raw, no metamethods) as the core asks ([`Source`]).
struct StoredTable {
    record: LuaTable,
    /// The field whose items were last asked for and its table, looked up once per field.
    list: Option<(&'static str, Option<LuaTable>)>,
}

impl Source for StoredTable {
    type Error = LuaError;

    fn field(&mut self, name: &'static str, longest: usize) -> LuaResult<Field> {
        Ok(field(&self.record.raw_get(name)?, longest))
    }

    fn item(&mut self, name: &'static str, n: usize, longest: usize) -> LuaResult<Option<Field>> {
        if !matches!(self.list, Some((cached, _)) if cached == name) {
            let list = match self.record.raw_get(name)? {
                Value::Table(t) => Some(t),
                _ => None,
            };
            self.list = Some((name, list));
        }
        let Some((_, Some(list))) = &self.list else { return Ok(None) };
        Ok(match list.raw_get(n)? {
            Value::Nil => None,
            v => Some(field(&v, longest)),
        })
    }
}

/// One stored value as a core value; a table is [`Field::Table`], not read.
fn field(v: &Value, longest: usize) -> Field {
    match v {
        Value::Nil => Field::Absent,
        Value::Integer(i) => u64::try_from(*i).map_or(Field::Other, Field::Integer),
        Value::Number(f) => Field::Float(*f),
        Value::String(s) => Field::text(&s.as_bytes(), longest),
        Value::Boolean(b) => Field::Boolean(*b),
        Value::Table(_) => Field::Table,
        _ => Field::Other,
    }
}

struct LuaExchange {
    verifier: Arc<Verifier>,
    exchange: Exchange,
}

impl UserData for LuaExchange {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // channel_binding (SASL-HMAC-PLUS): function(name) returning the connection's binding data
        // for that name (tls-exporter, tls-unique, tls-server-end-point), or nil
        // signed_out: as verify_user's
        methods.add_method_mut(
            "step",
            |lua, this, (msg, nodeprep, now, cb, signed_out): (Value, Value, Option<Value>, Option<Value>, Option<Value>)| {
                let msg = match &msg {
                    Value::Nil => None,
                    v => Some(string_arg("message", v)?),
                };
                let Value::Function(nodeprep) = nodeprep else { return Err(type_error("nodeprep", "function", &nodeprep)) };
                let now = time_arg(&now)?;
                let prep = |s: &str| -> Option<String> { nodeprep.call::<Option<String>>(s).ok().flatten() };
                let cb = match cb {
                    None | Some(Value::Nil) => None,
                    Some(Value::Function(f)) => Some(f),
                    Some(other) => return Err(type_error("channel_binding", "function", &other)),
                };
                let binding = |name: &str| -> Option<Vec<u8>> {
                    let f = cb.as_ref()?;
                    match f.call::<Value>(name).ok()? {
                        Value::String(s) => Some(s.as_bytes().to_vec()),
                        _ => None,
                    }
                };
                let signed_out = signed_out_arg(signed_out)?;
                let signed_out = |user: &str| lookup(&signed_out, user);
                let bytes = msg.as_ref().map(|m| m.as_bytes());
                match this.exchange.step_signed_out(&this.verifier, bytes.as_deref(), now, &prep, &binding, &signed_out) {
                    Outcome::Success { username, additional } => {
                        let extra = match additional {
                            Some(data) => Value::String(lua.create_string(&data)?),
                            None => Value::Nil,
                        };
                        ("success", username, extra).into_lua_multi(lua)
                    }
                    Outcome::Challenge(data) => ("challenge", lua.create_string(&data)?).into_lua_multi(lua),
                    Outcome::Failure(r) => ("failure", r.as_str()).into_lua_multi(lua),
                }
            },
        );
        methods.add_method("attempted_jid", |_, this, ()| Ok(this.exchange.attempted_jid().map(str::to_owned)));
        // after an "expired" or "otp-mismatch" failure: how far off the minting clock was, for the log line
        methods.add_method("clock_diagnosis", |_, this, ()| Ok(this.exchange.clock_diagnosis().map(|d| d.to_string())));
        methods.add_method("mechanism", |_, this, ()| Ok(this.exchange.mechanism().name()));
    }
}

struct LuaAddressBudget(crate::failures::AddressBudget);

impl UserData for LuaAddressBudget {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("record", |_, this, (address, now): (Value, Option<Value>)| {
            let address = match &address {
                Value::Nil => None,
                v => Some(string_arg("address", v)?),
            };
            let address = address.as_ref().map(|a| String::from_utf8_lossy(&a.as_bytes()).into_owned());
            let verdict = this.0.record(address.as_deref(), time_arg(&now)?);
            Ok((verdict.log, verdict.close))
        });
        methods.add_method_mut("summaries", |lua, this, now: Option<Value>| {
            let summaries = this.0.take_summaries(time_arg(&now)?);
            let list = lua.create_table()?;
            for (address, n) in summaries {
                list.push(lua.create_sequence_from([Value::String(lua.create_string(&address)?), Value::Integer(n as i64)])?)?;
            }
            Ok(list)
        });
    }
}

/// The option defaults the shims use (`native.defaults`), by `prosody.cfg.lua` name, from
/// `crate::options::OPTIONS`.
fn defaults(lua: &Lua) -> LuaResult<LuaTable> {
    use crate::options::{DefaultValue, OPTIONS};
    let t = lua.create_table()?;
    for o in OPTIONS {
        match o.default {
            DefaultValue::Unset => {}
            DefaultValue::Integer(n) => t.set(o.name, n)?,
            DefaultValue::Boolean(b) => t.set(o.name, b)?,
            DefaultValue::Text(s) => t.set(o.name, s)?,
            DefaultValue::AllMechanisms => t.set(o.name, lua.create_sequence_from(Mechanism::ALL.iter().map(|m| m.name()))?)?,
        }
    }
    Ok(t)
}

/// The accepted ranges (`native.limits`): `{ min, max }` per option, `<name>_min`, the choices, from
/// `crate::options::OPTIONS`; and the lengths the shims check or warn about.
fn limits(lua: &Lua) -> LuaResult<LuaTable> {
    use crate::options::{self as o, Limit, OPTIONS};
    let t = lua.create_table()?;
    for opt in OPTIONS {
        match opt.limit {
            Limit::None => {}
            Limit::Range(lo, hi) => t.set(opt.name, lua.create_sequence_from([lo, hi])?)?,
            Limit::Min(lo) => t.set(format!("{}_min", opt.name), lo)?,
            Limit::Choices(list) => t.set(opt.name, lua.create_sequence_from(list.iter().copied())?)?,
        }
    }
    t.set("lifetime_max", o::MAX_LIFETIME)?;
    t.set("secret_min_bytes", o::MIN_SECRET_LEN)?;
    t.set("secret_advised_bytes", o::ADVISED_SECRET_LEN)?;
    Ok(t)
}

/// `native.options`: every option the modules read, by name: `{ type = "integer" | "boolean" | ...,
/// verifier = true when native.verifier{} reads it, passed = true when mod_auth_hmac passes it
/// through as configured }`.
fn options(lua: &Lua) -> LuaResult<LuaTable> {
    use crate::options::{Reader, OPTIONS};
    let t = lua.create_table()?;
    for o in OPTIONS {
        let entry = lua.create_table()?;
        entry.set("type", o.kind.name())?;
        entry.set("verifier", o.verifier_reads())?;
        entry.set("passed", matches!(o.reader, Reader::Verifier(_)))?;
        t.set(o.name, entry)?;
    }
    Ok(t)
}

/// `native.read_secret_file(path[, server_gid[, configured]])` --> contents, exposure warning or nil |
/// nil, error: the module's and the CLI's one rule for secret files. `configured` is the option's
/// value as written (before it was resolved to `path`): the error never shows one that looks like a
/// secret.
fn read_secret_file(lua: &Lua, (path, gid, configured): (LuaString, Option<u32>, Option<LuaString>)) -> LuaResult<LuaMultiValue> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    match crate::secret_file::read_secret_file(std::path::Path::new(std::ffi::OsStr::from_bytes(&bytes)), gid) {
        Ok((data, exposure)) => {
            let data = crate::secret::SecretBytes::new(data);
            (lua.create_string(data.expose())?, exposure.map(|e| e.to_string())).into_lua_multi(lua)
        }
        Err(e) => {
            let configured = configured.map(|c| String::from_utf8_lossy(&c.as_bytes()).into_owned());
            let resolved = std::path::Path::new(std::ffi::OsStr::from_bytes(&bytes));
            let shown = configured.unwrap_or_else(|| resolved.display().to_string());
            fail(lua, &crate::secret_file::read_error(resolved, &shown, &e))
        }
    }
}

#[mlua::lua_module]
fn prosody_auth_hmac(lua: &Lua) -> LuaResult<LuaTable> {
    let exports = lua.create_table()?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    exports.set("verifier", lua.create_function(new_verifier)?)?;
    exports.set("mechanisms", lua.create_sequence_from(Mechanism::ALL.iter().map(|m| m.name()))?)?;
    exports.set("bearer", lua.create_table_from(Mechanism::ALL.iter().filter(|m| m.is_bearer()).map(|m| (m.name(), true)))?)?;
    exports.set(
        "channel_binding",
        lua.create_table_from(Mechanism::ALL.iter().filter(|m| m.needs_channel_binding()).map(|m| (m.name(), true)))?,
    )?;
    exports.set("reasons", lua.create_sequence_from(Reject::ALL.iter().map(|r| r.as_str()))?)?;
    // not charged to the client's address (mod_sasl_hmac's failure budget)
    exports.set(
        "servers_trouble",
        lua.create_table_from(Reject::ALL.iter().filter(|r| r.is_servers_trouble()).map(|r| (r.as_str(), true)))?,
    )?;
    exports.set("conditions", lua.create_table_from(Reject::ALL.iter().map(|r| (r.as_str(), r.condition())))?)?;
    exports.set(
        "condition_texts",
        lua.create_table_from(Reject::ALL.iter().filter_map(|r| condition_text(r.condition()).map(|t| (r.condition(), t))))?,
    )?;
    // what the shims send: the condition's text, or the reason's own (otp-mismatch)
    exports.set("reason_texts", lua.create_table_from(Reject::ALL.iter().filter_map(|r| r.text().map(|t| (r.as_str(), t))))?)?;
    exports.set("defaults", defaults(lua)?)?;
    exports.set("limits", limits(lua)?)?;
    exports.set("options", options(lua)?)?;
    exports.set("read_secret_file", lua.create_function(read_secret_file)?)?;
    exports.set(
        "address_budget",
        lua.create_function(|lua, per_minute: Value| {
            let per_minute = match per_minute {
                Value::Integer(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
                Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => n.min(f64::from(u32::MAX)) as u32,
                other => return Err(type_error("per_minute", "integer, at least 1", &other)),
            };
            let budget = crate::failures::AddressBudget::new(per_minute, crate::failures::ADDRESS_TABLE_CAP);
            lua.create_userdata(LuaAddressBudget(budget))
        })?,
    )?;
    // a client-supplied identity made safe for a log line (the shims log through it)
    exports.set(
        "printable",
        lua.create_function(|_, s: LuaString| Ok(crate::log_safe::printable(&String::from_utf8_lossy(&s.as_bytes()))))?,
    )?;
    Ok(exports)
}
