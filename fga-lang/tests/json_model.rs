#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
//! Upstream's JSON models round-trip through `model::AuthorizationModel`.

mod common;

use verdict_fga_lang::model::AuthorizationModel;

fn json_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in ["transformer", "transformer-module"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path().join("authorization-model.json");
            if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn upstream_json_models_round_trip() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let mut results = Vec::new();
    for p in json_files(&dir) {
        let src = std::fs::read_to_string(&p).unwrap();
        let r = (|| {
            let m = AuthorizationModel::from_json(&src).map_err(|e| e.to_string())?;
            let orig: serde_json::Value = serde_json::from_str(&src).map_err(|e| e.to_string())?;
            let back: serde_json::Value =
                serde_json::from_str(&m.to_json_pretty()).map_err(|e| e.to_string())?;
            if orig == back {
                Ok(())
            } else {
                Err(format!("differs:\n{}", m.to_json_pretty()))
            }
        })();
        let name = p.strip_prefix(&dir).unwrap().display().to_string();
        results.push((name, r));
    }
    assert!(!results.is_empty());
    common::report("transformer/*/authorization-model.json", &results, &[]);
}
