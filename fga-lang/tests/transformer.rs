#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]
//! Upstream's transformer cases: `.fga` → JSON model and JSON → `.fga`.

mod common;

use verdict_fga_lang::model::AuthorizationModel;

fn cases(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("transformer")).unwrap().flatten() {
        let p = e.path();
        let (Ok(fga), Ok(json)) = (
            std::fs::read_to_string(p.join("authorization-model.fga")),
            std::fs::read_to_string(p.join("authorization-model.json")),
        ) else {
            continue;
        };
        out.push((e.file_name().to_string_lossy().into_owned(), fga, json));
    }
    out.sort();
    out
}

#[test]
fn dsl_to_json() {
    let Some(dir) = common::data_dir() else { return };
    let mut results = Vec::new();
    for (name, fga, json) in cases(&dir) {
        let r = match verdict_fga_lang::parse_dsl(&fga) {
            Err(e) => Err(e.to_string()),
            Ok(m) => {
                let want: serde_json::Value = serde_json::from_str(&json).unwrap();
                if m.to_json_value() == want {
                    Ok(())
                } else {
                    Err(format!("got {}", m.to_json_pretty()))
                }
            }
        };
        results.push((name, r));
    }
    common::report("transformer/*.fga -> .json", &results, &[]);
}

#[test]
fn json_to_dsl() {
    let Some(dir) = common::data_dir() else { return };
    let mut results = Vec::new();
    for (name, fga, json) in cases(&dir) {
        let m = AuthorizationModel::from_json(&json).unwrap();
        let r = match verdict_fga_lang::to_dsl(&m) {
            Err(e) => Err(e.to_string()),
            Ok(d) if d == fga => Ok(()),
            Ok(d) => Err(format!("got:\n{d}\nwant:\n{fga}")),
        };
        results.push((name, r));
    }
    common::report("transformer/*.json -> .fga", &results, &[]);
}
