use mlua::Lua;
use rmpv::Value;

use super::*;

fn send(code: &str) -> Result<Vec<(String, Value)>, String> {
    let lua = Lua::new();
    let data: Table = lua.load(code).set_name("=t").eval().unwrap();
    table_to_custom(&data)
}

#[test]
fn tables_become_maps_and_sequences_arrays_sorted_by_key() {
    let got = send(r#"return { b = { 1, 2, "x" }, a = { k = true, [7] = 1.5 }, e = {} }"#).unwrap();
    assert_eq!(got[0].0, "a");
    assert_eq!(
        got[1],
        (
            "b".into(),
            Value::Array(vec![1.into(), 2.into(), "x".into()])
        )
    );
    assert_eq!(got[2], ("e".into(), Value::Map(vec![])));
    let Value::Map(a) = &got[0].1 else {
        panic!("{got:?}")
    };
    assert!(a.contains(&(Value::from("k"), Value::Boolean(true))));
    assert!(a.contains(&(Value::from(7), Value::F64(1.5))));
}

#[test]
fn what_cannot_be_sent_is_an_error_naming_the_key_path() {
    let e = send("return { cart = { items = { print } } }").unwrap_err();
    assert!(e.contains("data.cart.items.1 is a function"), "{e}");
    let e = send("local t = {} t.me = t return { loop = t }").unwrap_err();
    assert!(e.contains("nested deeper than 32"), "{e}");
    let e = send("return { [1] = 'x' }").unwrap_err();
    assert!(e.contains("top-level keys must be strings"), "{e}");
    let e = send("return { x = { [true] = 1 } }").unwrap_err();
    assert!(e.contains("data.x has the key a boolean"), "{e}");
    let e = send("return { big = string.rep('x', 2 * 1024 * 1024) }").unwrap_err();
    assert!(e.contains("over 1024 KiB"), "{e}");
    for key in [
        "stats",
        "stats_total",
        "errors",
        "user_count",
        "user_classes_count",
        "locusta_x",
    ] {
        let e = send(&format!("return {{ {key} = 1 }}")).unwrap_err();
        assert!(
            e.contains(&format!("data.{key} is a key of the stats report")),
            "{e}"
        );
    }
}

#[test]
fn a_peers_data_is_cut_to_bounds_and_counted() {
    let deep = (0..40).fold(Value::from(1), |v, _| Value::Array(vec![v]));
    let custom = vec![
        ("huge".to_string(), Value::from("x".repeat(MAX_BYTES + 1))),
        ("deep".to_string(), deep),
        (
            "odd".to_string(),
            Value::Map(vec![
                (Value::Boolean(true), 1.into()),
                (Value::from(u64::MAX), 2.into()),
                ("e".into(), Value::Ext(1, vec![0])),
                ("n".into(), Value::from(u64::MAX)),
            ]),
        ),
    ];
    let (kept, dropped) = bound_custom(&custom);
    assert_eq!(kept[0], ("huge".into(), Value::Nil));
    assert_eq!(
        dropped,
        Dropped {
            too_deep: 1,
            over_budget: 1,
            bad_keys: 2,
            other: 1
        }
    );
    let lua = Lua::new();
    let t = custom_to_table(&lua, &kept).unwrap();
    lua.globals().set("data", t).unwrap();
    let depth: i64 = lua
        .load(
            "local d, v = 0, data.deep while type(v) == 'table' do d = d + 1 v = v[1] end return d",
        )
        .eval()
        .unwrap();
    assert_eq!(depth, MAX_DEPTH as i64 - 1);
    let n: f64 = lua.load("return data.odd.n").eval().unwrap();
    assert_eq!(n, u64::MAX as f64);
    let e: bool = lua
        .load("return data.odd.e == nil and data.huge == nil")
        .eval()
        .unwrap();
    assert!(e);
}

#[test]
fn a_flood_of_small_values_stops_at_the_budget() {
    let custom = vec![(
        "many".to_string(),
        Value::Array(vec![Value::Nil; 10_000_000]),
    )];
    let (kept, dropped) = bound_custom(&custom);
    let Value::Array(items) = &kept[0].1 else {
        panic!()
    };
    // Memory and work bounded by the budget, not by what was sent.
    assert!(items.len() <= MAX_BYTES / PER_VALUE, "{}", items.len());
    assert_eq!(items.len() as u64 + dropped.over_budget, 10_000_000);
}
