//! `v:verify(token, jid | jids, now)` as a raw `lua_CFunction`: the one call on Prosody's login path
//! that is made often enough for mlua's generic argument handling (value references, conversions,
//! about 0.7 µs a call) to cost more than the verification itself.
//!
//! The only `unsafe` in the crate lives here. The rules it keeps:
//! - Arguments are read in place (`lua_tolstring` on values whose type was checked to be a string,
//!   so Lua never converts in place); the slices do not outlive the call, and no Lua code runs
//!   while they are held.
//! - The verifier is reached through upvalue 1, a light userdata pointing into an `Arc<Verifier>`;
//!   upvalue 2, the general mlua implementation, is a closure owning a clone of that `Arc`, so the
//!   verifier lives as long as the fast function does.
//! - Only the common call is handled here: `(token string, jid string, now integer or nil)`.
//!   Every other call (a list of JIDs, wrong types, which raise) goes to the general mlua
//!   implementation, so nothing here raises except a caught panic; errors from the general
//!   implementation unwind by `longjmp` over a frame that holds nothing to drop. Failed logins
//!   never raise: they return `nil, reason`. (A first version also read JID lists here, with
//!   `lua_rawgeti`; under Debian's LuaJIT 2.1 the VM then crashed after the function returned,
//!   which valgrind showed as reads of uninitialised values inside LuaJIT and which this module
//!   could not explain. Lists are rare, so they take the general path on every interpreter.)

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mlua::ffi;

use crate::error::Reject;
use crate::token::Verifier;

/// `make(light, general)` → `verify` closed over both: upvalue 1 is `light`, a light userdata
/// pointing to the `Verifier` inside an `Arc`; upvalue 2 is the general (mlua) implementation,
/// which owns a clone of that `Arc` (so the pointer stays valid as long as the closure can be
/// called) and takes every call that is not `(token string, jid string, now)`.
unsafe extern "C-unwind" fn make(l: *mut ffi::lua_State) -> c_int {
    unsafe {
        ffi::lua_settop(l, 2);
        ffi::lua_pushcclosure(l, verify, 2);
    }
    1
}

/// The fast `verify` for `verifier`, handing the less common calls (a list of JIDs, wrong types)
/// to `general`, which must own a clone of `verifier`'s `Arc`.
pub(super) fn verify_function(
    lua: &mlua::Lua,
    verifier: &Arc<Verifier>,
    general: mlua::Function,
) -> mlua::Result<mlua::Function> {
    // SAFETY: `make` only builds a closure from its two arguments (stack space for C functions
    // is guaranteed by Lua); the pointer is only read by `verify`, while upvalue 2 keeps it valid.
    let maker = unsafe { lua.create_c_function(make)? };
    maker.call((mlua::LightUserData(Arc::as_ptr(verifier) as *mut c_void), general))
}

/// Lua: `v:verify(token, jid | jids, now)` → `step, jid_index` | `nil, reason`.
unsafe extern "C-unwind" fn verify(l: *mut ffi::lua_State) -> c_int {
    let panicked = match catch_unwind(AssertUnwindSafe(|| unsafe { verify_inner(l) })) {
        Ok(Some(results)) => return results,
        Ok(None) => false,
        Err(payload) => {
            drop(payload);
            true
        }
    };
    // Nothing of this call is left to drop from here on: both ways out may longjmp over this frame.
    unsafe {
        if panicked {
            let message = "prosody_auth_hmac: internal error in verify";
            ffi::lua_pushlstring(l, message.as_ptr().cast(), message.len());
            ffi::lua_error(l)
        }
        // not the common shape: the general implementation decides (and raises on misuse)
        let nargs = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, nargs, ffi::LUA_MULTRET);
        ffi::lua_gettop(l)
    }
}

/// The string at `idx` if it is one (numbers are refused, never converted: an OTP keeps its
/// leading zeros).
///
/// # Safety
/// `idx` is a valid index of `l`; the slice must not be used after the value leaves the stack.
unsafe fn string_at<'a>(l: *mut ffi::lua_State, idx: c_int) -> Option<&'a [u8]> {
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0usize;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            return None;
        }
        Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
    }
}

/// The common call, `v:verify(token, jid[, now])` with strings and an integer or nil `now`;
/// `None` for anything else.
unsafe fn verify_inner(l: *mut ffi::lua_State) -> Option<c_int> {
    unsafe {
        if ffi::lua_gettop(l) > 4 {
            return None;
        }
        // 1 = the verifier (self), 2 = token, 3 = jid, 4 = now
        let token = string_at(l, 2)?;
        let jid = string_at(l, 3)?;
        let now = match ffi::lua_type(l, 4) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs(),
            ffi::LUA_TNUMBER => {
                let mut isnum: c_int = 0;
                let n = ffi::lua_tointegerx(l, 4, &mut isnum);
                if isnum == 0 {
                    return None;
                }
                u64::try_from(n).ok()?
            }
            _ => return None,
        };
        let verifier = &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const Verifier);
        let result = match std::str::from_utf8(jid) {
            Ok(jid) => verifier.verify(token, &[jid], now),
            Err(_) => Err(Reject::Malformed),
        };
        match result {
            Ok(accepted) => {
                ffi::lua_pushinteger(l, ffi::lua_Integer::try_from(accepted.step).ok()?);
                ffi::lua_pushinteger(l, 1);
            }
            Err(reason) => {
                let reason = reason.as_str();
                ffi::lua_pushnil(l);
                ffi::lua_pushlstring(l, reason.as_ptr().cast(), reason.len());
            }
        }
        Some(2)
    }
}
