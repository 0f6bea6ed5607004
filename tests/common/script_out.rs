//! Results a test script writes as `key=value` lines to `<dir>/out.txt`:
//! the Lua helpers that write them (`put(k, v)`, `err(f, ...)` → the
//! error text of a call, or "NO ERROR") and the reader.
//! Included with `#[path = "common/script_out.rs"] mod script_out;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

/// Lua lines defining `locusta`, `put` and `err`, writing into `dir`.
pub fn lua_prelude(dir: &Path) -> String {
    format!(
        r#"local locusta = require "locusta"
local out = assert(io.open("{}/out.txt", "w"))
local function put(k, v) out:write(k, "=", (tostring(v):gsub("\n", " ")), "\n"); out:flush() end
local function err(f, ...) local ok, e = pcall(f, ...); return ok and "NO ERROR" or tostring(e) end
"#,
        dir.display()
    )
}

/// What the script `put`.
pub fn results(dir: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join("out.txt")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
