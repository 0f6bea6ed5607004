//! `locusta.json`: Lua values <-> JSON text.
//!
//! Owns `locusta.json.{encode, decode, null, array}` and the two conversions
//! the HTTP client uses for `opts.json` request bodies ([`to_json`]) and
//! `r:json()` ([`from_json`]). It does not own HTTP or the response object.
//!
//! The mapping (the same choices as lua-cjson, which Lua users know):
//! - JSON `null` decodes to `locusta.json.null` (mlua's `Value::NULL`, a
//!   light userdata), not `nil`, so arrays keep their length and objects
//!   keep their keys. It encodes back to `null`; so does Lua `nil` inside an
//!   array hole. Note that `locusta.json.null` is truthy in Lua.
//! - JSON arrays decode to Lua sequences carrying mlua's array metatable, so
//!   an empty array re-encodes as `[]`. `locusta.json.array(t)` marks a
//!   table the same way (use it to send an empty JSON array).
//! - When encoding, a table is an array when it has the array metatable or
//!   when its keys are exactly `1..#t` with `#t > 0`. Every other table is an
//!   object, so an unmarked empty table encodes as `{}`. Object keys must be
//!   strings or numbers (numbers are written as strings, like cjson does).
//! - Integers stay integers both ways; JSON integers beyond i64 become floats.
//!   NaN and infinities cannot be encoded (an error, not a silent `null`).
//! - Strings must be valid UTF-8 to be encoded.
//! - Nesting deeper than [`MAX_DEPTH`] is an error both ways (a recursive
//!   table is caught by this too), so nothing from a script or a server can
//!   overflow the stack.
//!
//! Errors are Lua errors with a clear message, e.g.
//! `invalid JSON at line 1 column 5: expected value`.

use std::cell::RefCell;

use mlua::{Lua, LuaSerdeExt, Table, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of arrays/objects accepted (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// Install `module.json = { encode, decode, null, array }`.
pub fn install(lua: &Lua, module: &Table) -> mlua::Result<()> {
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let bytes = to_json(lua, &v)?;
            lua.create_string(bytes)
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, s: Value| match s {
            Value::String(s) => from_json(lua, &s.as_bytes()),
            other => Err(mlua::Error::runtime(format!(
                "locusta.json.decode: expected a string, got {}",
                other.type_name()
            ))),
        })?,
    )?;
    json.set("null", Value::NULL)?;
    json.set(
        "array",
        lua.create_function(|lua, t: Option<Table>| {
            let t = match t {
                Some(t) => t,
                None => lua.create_table()?,
            };
            t.set_metatable(Some(lua.array_metatable()))?;
            Ok(t)
        })?,
    )?;
    module.set("json", json)?;
    Ok(())
}

/// Encode a Lua value as JSON text (for request bodies and `json.encode`).
pub fn to_json(lua: &Lua, v: &Value) -> mlua::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    let array_mt = lua.array_metatable();
    encode(v, &mut out, 0, &array_mt)?;
    Ok(out)
}

/// Decode JSON text into a Lua value (for `r:json()` and `json.decode`).
///
/// The parser builds Lua values as it goes ([`LuaSeed`]): no intermediate
/// `serde_json::Value` tree, whose maps and strings cost as much again as
/// the Lua tables (a 1 KB body of 18 objects was ~30 % of a shop script's
/// profile that way). serde_json's own depth limit (128) still applies.
pub fn from_json(lua: &Lua, bytes: &[u8]) -> mlua::Result<Value> {
    let array_mt = lua.array_metatable();
    let lua_error = RefCell::new(None);
    let seed = LuaSeed {
        lua,
        array_mt: &array_mt,
        lua_error: &lua_error,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, lua_error.into_inner()) {
        (Ok(v), _) => Ok(v),
        // Lua refused (e.g. its memory limit): that error, not a JSON one.
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(json_error(e)),
    }
}

/// `invalid JSON at line L column C: <what>` from serde_json's error.
fn json_error(e: serde_json::Error) -> mlua::Error {
    let text = e.to_string();
    // serde_json appends " at line L column C"; we put the position first.
    let what = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    mlua::Error::runtime(format!(
        "invalid JSON at line {} column {}: {what}",
        e.line(),
        e.column()
    ))
}

fn encode_error(msg: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("cannot encode to JSON: {msg}"))
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize, array_mt: &Table) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::Integer(i) => push_int(out, *i),
        Value::Number(n) => push_float(out, *n)?,
        Value::String(s) => {
            let s = s
                .to_str()
                .map_err(|_| encode_error("a string is not valid UTF-8"))?;
            push_str(out, &s)?;
        }
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(encode_error(format!(
                    "tables nested deeper than {MAX_DEPTH} levels (a table that contains itself?)"
                )));
            }
            encode_table(t, out, depth + 1, array_mt)?;
        }
        other => {
            return Err(encode_error(format!(
                "a {} has no JSON form",
                other.type_name()
            )))
        }
    }
    Ok(())
}

fn encode_table(t: &Table, out: &mut Vec<u8>, depth: usize, array_mt: &Table) -> mlua::Result<()> {
    let len = t.raw_len();
    let marked = t.metatable().is_some_and(|mt| mt == *array_mt);
    let is_array = marked || (len > 0 && keys_are_sequence(t, len)?);
    if is_array {
        out.push(b'[');
        for i in 1..=len {
            if i > 1 {
                out.push(b',');
            }
            let v: Value = t.raw_get(i)?;
            encode(&v, out, depth, array_mt)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    let mut first = true;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if !first {
            out.push(b',');
        }
        first = false;
        match &k {
            Value::String(s) => {
                let s = s
                    .to_str()
                    .map_err(|_| encode_error("a table key is not valid UTF-8"))?;
                push_str(out, &s)?;
            }
            Value::Integer(i) => {
                out.push(b'"');
                push_int(out, *i);
                out.push(b'"');
            }
            Value::Number(n) => {
                out.push(b'"');
                push_float(out, *n)?;
                out.push(b'"');
            }
            other => {
                return Err(encode_error(format!(
                    "a table key of type {} (object keys must be strings or numbers)",
                    other.type_name()
                )))
            }
        }
        out.push(b':');
        encode(&v, out, depth, array_mt)?;
    }
    out.push(b'}');
    Ok(())
}

/// Whether the keys of `t` are exactly the integers `1..=len`.
fn keys_are_sequence(t: &Table, len: usize) -> mlua::Result<bool> {
    let mut count = 0usize;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match k {
            Value::Integer(i) if i >= 1 && (i as u64) <= len as u64 => count += 1,
            _ => return Ok(false),
        }
    }
    Ok(count == len)
}

fn push_int(out: &mut Vec<u8>, i: i64) {
    use std::io::Write;
    let _ = write!(out, "{i}");
}

fn push_float(out: &mut Vec<u8>, n: f64) -> mlua::Result<()> {
    if !n.is_finite() {
        return Err(encode_error(format!("the number {n} has no JSON form")));
    }
    serde_json::to_writer(&mut *out, &n).map_err(encode_error)
}

fn push_str(out: &mut Vec<u8>, s: &str) -> mlua::Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(encode_error)
}

/// Builds one Lua value from the parser's events; Lua's own errors are
/// kept in `lua_error` (serde's error type can only carry text).
#[derive(Clone, Copy)]
struct LuaSeed<'a> {
    lua: &'a Lua,
    array_mt: &'a Table,
    lua_error: &'a RefCell<Option<mlua::Error>>,
}

impl LuaSeed<'_> {
    fn lua<T, E: de::Error>(&self, r: mlua::Result<T>) -> Result<T, E> {
        r.map_err(|e| {
            let text = e.to_string();
            self.lua_error.borrow_mut().get_or_insert(e);
            E::custom(text)
        })
    }
}

impl<'de> DeserializeSeed<'de> for LuaSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LuaSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::NULL)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Boolean(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Integer(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        // Beyond i64: a float, as lua-cjson does.
        Ok(i64::try_from(u).map_or(Value::Number(u as f64), Value::Integer))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.lua(self.lua.create_string(s)).map(Value::String)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let t = self.lua(
            self.lua
                .create_table_with_capacity(seq.size_hint().unwrap_or(0), 0),
        )?;
        let mut i = 0;
        while let Some(item) = seq.next_element_seed(self)? {
            i += 1;
            self.lua(t.raw_set(i, item))?;
        }
        self.lua(t.set_metatable(Some(self.array_mt.clone())))?;
        Ok(Value::Table(t))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let t = self.lua(
            self.lua
                .create_table_with_capacity(0, map.size_hint().unwrap_or(0)),
        )?;
        while let Some(key) = map.next_key_seed(self)? {
            let item = map.next_value_seed(self)?;
            self.lua(t.raw_set(key, item))?;
        }
        Ok(Value::Table(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> (Lua, Table) {
        let lua = Lua::new();
        let m = lua.create_table().unwrap();
        install(&lua, &m).unwrap();
        lua.globals()
            .set("json", m.get::<Table>("json").unwrap())
            .unwrap();
        (lua, m)
    }

    fn eval<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> T {
        lua.load(code).eval().unwrap()
    }

    #[test]
    fn round_trips_and_mapping() {
        let (lua, _) = lua();
        let s: String = eval(&lua, r#"return json.encode({1, 2, "x", true})"#);
        assert_eq!(s, r#"[1,2,"x",true]"#);
        let s: String = eval(&lua, r#"return json.encode({})"#);
        assert_eq!(s, "{}");
        let s: String = eval(&lua, r#"return json.encode(json.array())"#);
        assert_eq!(s, "[]");
        let s: String = eval(&lua, r#"return json.encode(json.decode("[]"))"#);
        assert_eq!(s, "[]");
        let s: String = eval(&lua, r#"return json.encode({a = json.null})"#);
        assert_eq!(s, r#"{"a":null}"#);
        let s: String = eval(&lua, r#"return json.encode({[1] = "a", [3] = "c"})"#);
        assert!(s.starts_with('{') && s.contains(r#""3":"c""#), "{s}");
        let s: String = eval(&lua, r#"return json.encode({x = 1.5, y = "q\"\n"})"#);
        assert!(
            s.contains(r#""x":1.5"#) && s.contains(r#""y":"q\"\n""#),
            "{s}"
        );
        let ok: bool = eval(
            &lua,
            r#"
            local v = json.decode('{"a":[1,null,3],"b":{"c":"d"},"n":null,"f":2.5,"big":18446744073709551615}')
            return #v.a == 3 and v.a[2] == json.null and v.b.c == "d" and v.n == json.null
               and math.type(v.a[1]) == "integer" and v.f == 2.5 and math.type(v.big) == "float"
            "#,
        );
        assert!(ok);
    }

    #[test]
    fn errors_are_clear() {
        let (lua, _) = lua();
        let err = lua
            .load(r#"return json.decode('{"a": }')"#)
            .exec()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid JSON at line 1 column 7: expected value"),
            "{err}"
        );
        let err = lua
            .load(r#"local t = {}; t.self = t; return json.encode(t)"#)
            .exec()
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested deeper than 128"), "{err}");
        let err = lua
            .load(r#"return json.encode({f = print})"#)
            .exec()
            .unwrap_err()
            .to_string();
        assert!(err.contains("a function has no JSON form"), "{err}");
        let err = lua
            .load(r#"return json.encode(0/0)"#)
            .exec()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no JSON form"), "{err}");
        let deep = "[".repeat(10_000);
        let err = from_json(&lua, deep.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("invalid JSON"), "{err}");
        let err = from_json(&lua, b"[1, 2] x").unwrap_err().to_string();
        assert!(err.contains("trailing characters"), "{err}");
        // Lua's own refusal (its memory limit) is reported as itself, not
        // as bad JSON.
        let big = format!("[{}1]", "\"abcdefghijklmnopqrstuvwxyz\",".repeat(50_000));
        lua.set_memory_limit(lua.used_memory() + (256 << 10))
            .unwrap();
        let err = from_json(&lua, big.as_bytes()).unwrap_err();
        lua.set_memory_limit(0).unwrap();
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
    }
}
