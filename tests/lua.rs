//! The module table driven from an in-process (vendored) Lua: argument conversion from real
//! Lua values, `nil, err` returns and raised misuse errors.

use mlua::prelude::*;

fn lua_with_examples() -> Lua {
    let lua = Lua::new();
    let funcs = funcs::funcs(&lua).unwrap();
    lua.globals().set("funcs", funcs).unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    lua.globals()
        .set("EXAMPLES", examples.to_str().unwrap())
        .unwrap();
    lua.load("assert(funcs.load(EXAMPLES))").exec().unwrap();
    lua
}

fn eval<T: FromLuaMulti>(lua: &Lua, code: &str) -> T {
    lua.load(code)
        .eval()
        .unwrap_or_else(|e| panic!("{code}: {e}"))
}

#[test]
fn calls_return_lua_values() {
    let lua = lua_with_examples();
    assert_eq!(
        eval::<i64>(&lua, "return funcs.call('examples:compute', 6, 7)"),
        42
    );
    let display: String = eval(
        &lua,
        "local r = funcs.call('examples:transform_users', \
         {{id = 1, name = 'Alice', tags = {'admin', 'dev'}, active = true}}) \
         return r[1].display .. '/' .. r[1]['tag-count']",
    );
    assert_eq!(display, "Alice [admin, dev]/2");
}

#[test]
fn failures_return_nil_and_an_error_object() {
    let lua = lua_with_examples();
    let (v, kind, msg): (LuaValue, String, String) = eval(
        &lua,
        "local v, e = funcs.call('examples:compute', 6, {}) return v, e:kind(), tostring(e)",
    );
    assert!(v.is_nil());
    assert_eq!(kind, "INVALID");
    assert_eq!(
        msg,
        "failed to call `examples:compute`: argument 2 (b): expected u32, got table"
    );
}

#[test]
fn a_nil_argument_keeps_its_position() {
    let lua = lua_with_examples();
    let msg: String = eval(
        &lua,
        "local _, e = funcs.call('examples:compute', nil, 7) return e:message()",
    );
    assert!(
        msg.contains("argument 1 (a): expected u32, got nil"),
        "{msg}"
    );
    let msg: String = eval(
        &lua,
        "local _, e = funcs.call('examples:compute', 6, 7, nil) return e:message()",
    );
    assert!(msg.contains("expected 2 argument(s), got 3"), "{msg}");
}

#[test]
fn misuse_raises() {
    let lua = lua_with_examples();
    let err = lua.load("funcs.call({})").exec().unwrap_err();
    assert!(
        err.to_string()
            .contains("bad argument #1 to 'call' (string expected, got table)"),
        "{err}"
    );
    assert!(lua.load("funcs.load()").exec().is_err());
}

#[test]
fn deep_tables_are_rejected_not_overflowed() {
    let lua = lua_with_examples();
    let msg: String = eval(
        &lua,
        "local t = {} local cur = t for i = 1, 10000 do cur[1] = {} cur = cur[1] end \
         local _, e = funcs.call('examples:transform_users', t) return e:message()",
    );
    assert!(msg.contains("deeper than 128 levels"), "{msg}");
}

#[test]
fn running_out_of_memory_while_pushing_a_direct_result_is_a_lua_error() {
    let lua = lua_with_examples();
    lua.load(
        "USERS = {} \
         for i = 1, 2000 do \
           USERS[i] = {id = i, name = 'user' .. i, tags = {'admin', 'dev'}, active = true} \
         end \
         assert(#funcs.call('examples:transform_users', USERS) == 2000)",
    )
    .exec()
    .unwrap();
    // The arguments are read in place; the 2,000 result records do not fit in 16 KiB more.
    lua.gc_collect().unwrap();
    lua.set_memory_limit(lua.used_memory() + (16 << 10))
        .unwrap();
    let (ok, message): (bool, String) = eval(
        &lua,
        "local ok, err = pcall(funcs.call, 'examples:transform_users', USERS) \
         return ok, tostring(err)",
    );
    assert!(!ok);
    assert!(message.contains("memory"), "{message}");
    lua.set_memory_limit(0).unwrap();
    assert_eq!(
        eval::<i64>(
            &lua,
            "return #funcs.call('examples:transform_users', USERS)"
        ),
        2000
    );
    let direct: bool = eval(
        &lua,
        "for _, s in pairs(funcs.stats()) do if s.direct then return true end end return false",
    );
    assert!(direct);
}

#[test]
fn instances_keep_state_and_the_collector_drops_their_handles() {
    // On every vendored Lua (5.4 and 5.5): a core instance's global persists; handles and
    // instances let go are dropped and closed by the next call, never inside `__gc`.
    let lua = lua_with_examples();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/fixtures/instances");
    lua.globals()
        .set("INSTANCES", fixtures.to_str().unwrap())
        .unwrap();
    let (bumped, live, open, value): (i64, i64, i64, i64) = eval(
        &lua,
        "assert(funcs.load(INSTANCES))
         local core = assert(funcs.instantiate('inst:core'))
         core:call('bump', 2)
         local bumped = core:call('bump', 3)
         for _ = 1, 50 do
           local twins = assert(funcs.instantiate('inst:twins'))
           for _ = 1, 100 do assert(twins:call('a#make')) end
         end
         collectgarbage() collectgarbage()
         local twins = assert(funcs.instantiate('inst:twins'))
         local value = twins:call('b#value', twins:call('b#make'))
         collectgarbage() collectgarbage()
         twins:call('a#make')
         local s = funcs.stats('inst:twins')
         return bumped, s.live_handles, s.open_instances, value",
    );
    assert_eq!((bumped, value), (5, 7));
    assert_eq!(open, 1, "unreachable instances are closed");
    assert!(live <= 1, "unreachable handles are dropped: {live} live");
}
